import { encodeTaggedRecord, RECORD_HEADER, TaggedRecordDecoder, type TaggedRecord } from './tagged-records.js';
import { AgentErrorCode } from './errors.js';

/**
 * exec's response body: records of 1 byte tag, u32 BE length, bytes. One body keeps
 * flow control simple and stdout/stderr interleaving in order; the exit status is
 * always the last record.
 */
export const ExecRecordTag = {
  STDOUT: 1,
  STDERR: 2,
  /** `{ exitCode, signal }` as JSON. */
  EXIT: 3,
} as const;
export type ExecRecordTag = (typeof ExecRecordTag)[keyof typeof ExecRecordTag];

export const EXEC_RECORD_HEADER = RECORD_HEADER;
/** A record longer than this is a protocol error: a confused peer cannot make us buffer without bound. */
export const EXEC_MAX_RECORD = 16 * 1024 * 1024;

export function encodeExecRecord(tag: ExecRecordTag, data: Uint8Array): Buffer {
  return encodeTaggedRecord(tag, data);
}

export type ExecRecord = TaggedRecord<ExecRecordTag>;

/**
 * Splits exec's output body into records, whatever the chunking. Holds at most one record
 * (bounded by `maxRecord`); an unknown tag or an oversized record is
 * `ERR_VMLINK_PROTOCOL` naming it.
 */
export class ExecRecordDecoder extends TaggedRecordDecoder<ExecRecordTag> {
  constructor(maxRecord = EXEC_MAX_RECORD) {
    super(Object.values(ExecRecordTag), 'exec output', maxRecord);
  }
}

/**
 * Options of `exec` beyond `{ command, args, stdin }` (all optional):
 * - `pty: { cols, rows, term? }` runs the command on a pseudo-terminal: its stdin, stdout
 *   and stderr are the terminal, so its output comes back as STDOUT records only, and the
 *   `exec.stdin` body is framed as input records (ExecInputTag) so that typed bytes and
 *   window-size changes keep their order.
 * - `env: { NAME: value }` only names the agent allows (`--allow-env`); a refused name is
 *   ERR_VMLINK_ENV_DENIED naming it.
 * - `cwd`: a directory under the agent's `--root` (as clients see it: `/` is the root).
 * - `maxOutput: { stdout?, stderr? }`: bytes per stream the client wants at most; the
 *   agent applies the smaller of this and its own ceiling.
 */
export interface ExecRequestOptions {
  pty?: PtySize & { term?: string };
  env?: Record<string, string>;
  cwd?: string;
  maxOutput?: { stdout?: number; stderr?: number };
}

export interface PtySize {
  cols: number;
  rows: number;
}

/** The EXIT record: the exit status, and which streams were cut at which byte count. */
export interface ExecExit {
  exitCode: number | null;
  signal: string | null;
  /** Present when output was truncated: stream -> the cap it was cut at (the rest was not read). */
  truncated?: { stdout?: number; stderr?: number };
}

/** Refusal of an `env` name the agent does not allow (`--allow-env`): AgentErrorCode.ENV_DENIED. */
export const ENV_DENIED = AgentErrorCode.ENV_DENIED;

/**
 * A PTY exec's `exec.stdin` body: records in the same layout as the output (u8 tag, u32
 * BE length, bytes): DATA is typed input, RESIZE a JSON `{ cols, rows }` (TIOCSWINSZ on
 * the terminal: its foreground group gets SIGWINCH).
 */
export const ExecInputTag = {
  DATA: 1,
  RESIZE: 4,
} as const;
export type ExecInputTag = (typeof ExecInputTag)[keyof typeof ExecInputTag];

/** The largest input record the agent accepts (a resize is tiny; typed input comes in small chunks). */
export const EXEC_MAX_INPUT_RECORD = 1024 * 1024;

/** Encodes one input record (DATA bytes, or a RESIZE size). */
export function encodeExecInput(input: { data: Uint8Array } | { resize: PtySize }): Buffer {
  if ('data' in input) return encodeTaggedRecord(ExecInputTag.DATA, input.data);
  return encodeTaggedRecord(ExecInputTag.RESIZE, Buffer.from(JSON.stringify(input.resize)));
}

export type ExecInputRecord = TaggedRecord<ExecInputTag>;

/** Splits a PTY exec's input body into records; bounded like ExecRecordDecoder. */
export class ExecInputDecoder extends TaggedRecordDecoder<ExecInputTag> {
  constructor(maxRecord = EXEC_MAX_INPUT_RECORD) {
    super(Object.values(ExecInputTag), 'exec input', maxRecord);
  }
}
