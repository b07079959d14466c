import { EXEC_MAX_RECORD } from './exec-records.js';
import { encodeTaggedRecord, TaggedRecordDecoder, type TaggedRecord } from './tagged-records.js';

/**
 * Detached processes (kata-agent's exec lifecycle): a command started with an id that
 * outlives the connection that started it. The agent keeps the last output of each
 * stream in a bounded ring and counts what it had to drop; any admitted client can list,
 * wait for, signal and (re-)attach to it by id.
 *
 * - `detached.start { command, args? }` -> DetachedProcessInfo (stdin is /dev/null).
 * - `detached.list {}` -> `{ processes, limits }`, live ones first, then exited, oldest first.
 * - `detached.wait { id, timeoutMs? }` -> DetachedProcessInfo once it exited, or when
 *   `timeoutMs` passed first (then `state` is still `running`; not an error).
 * - `detached.kill { id, signal }` -> `{ id, signal, delivered }`: to its process group.
 * - `detached.attach { id, fromStart? }` -> DetachedAttachResult, then a body of records
 *   (DetachedRecordTag) until the process exited and its output was sent: what the ring
 *   still holds from where the last attach stopped (`fromStart`: from the oldest byte
 *   kept), then live output; GAP when bytes were dropped under a slow reader; EXIT last.
 */
export const DETACHED_METHODS = ['detached.start', 'detached.list', 'detached.wait', 'detached.kill', 'detached.attach'] as const;
export type DetachedMethodName = (typeof DETACHED_METHODS)[number];

/*
 * Their own codes (AgentErrorCode.NO_SUCH_PROCESS, DETACHED_LIMIT, DETACHED_DISABLED, with
 * words in AGENT_ERROR_WORDS: errors.ts), besides the exec ones (EXEC_DENIED, ENOENT...).
 */

/** Signals a client may send (as exec.signal). */
export const DETACHED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT'] as const;
export type DetachedSignal = (typeof DETACHED_SIGNALS)[number];

export type DetachedState = 'running' | 'exited';

/** One stream's bytes: all it wrote, what the ring still holds, what had to be dropped (total = kept + dropped). */
export interface DetachedStreamBytes {
  total: number;
  kept: number;
  dropped: number;
}

export interface DetachedProcessInfo {
  id: string;
  /** The process (and process group) id in the guest. */
  pid: number;
  command: string;
  args: string[];
  state: DetachedState;
  /** Set once exited: the exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: string | null;
  /** ms since 1970. */
  startedAt: number;
  exitedAt: number | null;
  stdout: DetachedStreamBytes;
  stderr: DetachedStreamBytes;
}

export interface DetachedStartParams {
  command: string;
  args?: string[];
}

export interface DetachedLimits {
  /** Detached processes running at once (`--max-detached`). */
  maxRunning: number;
  /** Exited ones remembered; the oldest exited is forgotten first (`--max-detached-exited`). */
  maxExited: number;
  /** Bytes kept per stream of each process (`--detached-output`). */
  outputBytes: number;
}

export interface DetachedListResult {
  processes: DetachedProcessInfo[];
  limits: DetachedLimits;
}

export interface DetachedIdParams {
  id: string;
}

export interface DetachedWaitParams extends DetachedIdParams {
  /** Give up after this long and answer with the state as it is (running). Default: no limit. */
  timeoutMs?: number;
}

export interface DetachedKillParams extends DetachedIdParams {
  signal: DetachedSignal;
}

export interface DetachedKillResult {
  id: string;
  signal: DetachedSignal;
  /** False when the process had exited already. */
  delivered: boolean;
}

export interface DetachedAttachParams extends DetachedIdParams {
  /** Replay from the oldest byte still kept instead of where the last attach stopped. */
  fromStart?: boolean;
}

export interface DetachedAttachResult {
  process: DetachedProcessInfo;
  /** Bytes between where this attach starts and the oldest byte still kept: gone for good. */
  lost: { stdout: number; stderr: number };
}

/**
 * detached.attach's body: records like exec's (u8 tag, u32 BE length, bytes), with one
 * more tag. EXIT (`{ exitCode, signal }` JSON) is always last.
 */
export const DetachedRecordTag = {
  STDOUT: 1,
  STDERR: 2,
  EXIT: 3,
  /** `{ stream: 'stdout' | 'stderr', bytes }` JSON: output this reader missed (dropped while it lagged). */
  GAP: 4,
} as const;
export type DetachedRecordTag = (typeof DetachedRecordTag)[keyof typeof DetachedRecordTag];

export interface DetachedGap {
  stream: 'stdout' | 'stderr';
  bytes: number;
}

export type DetachedRecord = TaggedRecord<DetachedRecordTag>;

export function encodeDetachedRecord(tag: DetachedRecordTag, data: Uint8Array): Buffer {
  return encodeTaggedRecord(tag, data);
}

/** Splits an attach body into records, whatever the chunking; holds at most one record. */
export class DetachedRecordDecoder extends TaggedRecordDecoder<DetachedRecordTag> {
  constructor(maxRecord = EXEC_MAX_RECORD) {
    super(Object.values(DetachedRecordTag), 'detached output', maxRecord);
  }
}

/** Params and result of each detached method, for typed clients (part of MethodTypes). */
export interface DetachedMethodTypes {
  'detached.start': { params: DetachedStartParams; result: DetachedProcessInfo };
  'detached.list': { params: Record<string, never>; result: DetachedListResult };
  'detached.wait': { params: DetachedWaitParams; result: DetachedProcessInfo };
  'detached.kill': { params: DetachedKillParams; result: DetachedKillResult };
  'detached.attach': { params: DetachedAttachParams; result: DetachedAttachResult };
}
