import { EXEC_MAX_RECORD } from './exec-records.js';
import { VmlinkError } from '@vmlink/errors';
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
 * - `detached.attach { id, fromStart?, ack? }` -> DetachedAttachResult, then a body of
 *   records (DetachedRecordTag) until the process exited and its output was sent: what the
 *   ring still holds from where the last attach stopped (`fromStart`: from the oldest byte
 *   kept), then live output; GAP when bytes were dropped under a slow reader; EXIT last.
 *   With `ack`, the client's request body carries ACK records (DetachedAckTag): "I have
 *   written out everything up to these offsets". Only acknowledged bytes move where the
 *   next attach continues, so output sent to a client that died before writing it out is
 *   shown again by the next attach instead of being lost.
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
  /**
   * Where an attach without `fromStart` continues: the furthest offset a client
   * acknowledged (or, for a client that does not acknowledge, was sent). Absent from agents
   * older than this field.
   */
  delivered?: number;
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
  /**
   * The client acknowledges what it has written out (ACK records in its request body); only
   * that moves where the next attach continues. Without it, what was sent counts.
   */
  ack?: boolean;
}

/** A position in each output stream, in bytes since the process started. */
export interface DetachedOffsets {
  stdout: number;
  stderr: number;
}

export interface DetachedAttachResult {
  process: DetachedProcessInfo;
  /** Bytes between where this attach starts and the oldest byte still kept: gone for good. */
  lost: DetachedOffsets;
  /**
   * Where this attach's body begins in each stream: data records and GAPs follow on from
   * here, so a client can tell the offsets it acknowledges. Absent from older agents.
   */
  start?: DetachedOffsets;
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

/**
 * An attach client's request body (with `ack`): tagged records like every body, each ACK a
 * JSON DetachedOffsets, cumulative (the latest one counts, so a client may skip some).
 */
export const DetachedAckTag = { ACK: 1 } as const;
export type DetachedAckTag = (typeof DetachedAckTag)[keyof typeof DetachedAckTag];

/** Largest ACK record: two offsets of JSON. */
export const DETACHED_ACK_MAX_RECORD = 256;

export function encodeDetachedAck(offsets: DetachedOffsets): Buffer {
  return encodeTaggedRecord(DetachedAckTag.ACK, Buffer.from(JSON.stringify({ stdout: offsets.stdout, stderr: offsets.stderr })));
}

/** Splits an ACK body into records, whatever the chunking; holds at most one small record. */
export class DetachedAckDecoder extends TaggedRecordDecoder<DetachedAckTag> {
  constructor() {
    super(Object.values(DetachedAckTag), 'detached attach acknowledgements', DETACHED_ACK_MAX_RECORD);
  }
}

/** An ACK record's offsets, or ERR_VMLINK_PROTOCOL naming what is wrong with it. */
export function parseDetachedAck(data: Uint8Array): DetachedOffsets {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    throw new VmlinkError('ERR_VMLINK_PROTOCOL', `detached attach acknowledgement: not JSON (${data.byteLength} bytes)`);
  }
  const offsets = value as Partial<Record<keyof DetachedOffsets, unknown>> | null;
  for (const stream of ['stdout', 'stderr'] as const) {
    const offset = offsets?.[stream];
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      throw new VmlinkError('ERR_VMLINK_PROTOCOL', `detached attach acknowledgement: ${stream} must be an integer >= 0, got ${JSON.stringify(offset) ?? 'undefined'}`);
    }
  }
  return { stdout: offsets!.stdout as number, stderr: offsets!.stderr as number };
}

/**
 * Follows an attach body from its `start`: after each data record or GAP, `offsets` is
 * how far into each stream the client has got (what it acknowledges once written out).
 */
export class DetachedAttachCursor {
  private readonly at: DetachedOffsets;

  constructor(start: DetachedOffsets) {
    this.at = { stdout: start.stdout, stderr: start.stderr };
  }

  /** Moves past `record`; true when it moved (data or GAP). */
  advance(record: DetachedRecord): boolean {
    if (record.tag === DetachedRecordTag.STDOUT) this.at.stdout += record.data.length;
    else if (record.tag === DetachedRecordTag.STDERR) this.at.stderr += record.data.length;
    else if (record.tag === DetachedRecordTag.GAP) {
      const gap = JSON.parse(record.data.toString('utf8')) as Partial<DetachedGap> | null;
      if ((gap?.stream !== 'stdout' && gap?.stream !== 'stderr') || !Number.isSafeInteger(gap.bytes) || (gap.bytes as number) < 0) {
        throw new VmlinkError('ERR_VMLINK_PROTOCOL', `detached output: a malformed GAP record ${record.data.toString('utf8').slice(0, 100)}`);
      }
      this.at[gap.stream] += gap.bytes as number;
    } else return false;
    return true;
  }

  get offsets(): DetachedOffsets {
    return { stdout: this.at.stdout, stderr: this.at.stderr };
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
