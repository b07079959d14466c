import { VmlinkError } from '@vmlink/errors';

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

export const EXEC_RECORD_HEADER = 5;
/** A record longer than this is a protocol error: a confused peer cannot make us buffer without bound. */
export const EXEC_MAX_RECORD = 16 * 1024 * 1024;

export function encodeExecRecord(tag: ExecRecordTag, data: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(EXEC_RECORD_HEADER);
  header.writeUInt8(tag, 0);
  header.writeUInt32BE(data.length, 1);
  return Buffer.concat([header, data]);
}

export interface ExecRecord {
  readonly tag: ExecRecordTag;
  readonly data: Buffer;
}

/**
 * Splits a byte stream into records, whatever the chunking. Holds at most one record
 * (bounded by `maxRecord`); an unknown tag or an oversized record is
 * `ERR_VMLINK_PROTOCOL` naming it.
 */
export class ExecRecordDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxRecord = EXEC_MAX_RECORD) {}

  /** Records completed by `chunk`, in order. */
  push(chunk: Uint8Array): ExecRecord[] {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    const records: ExecRecord[] = [];
    while (this.pending.length >= EXEC_RECORD_HEADER) {
      const tag = this.pending.readUInt8(0);
      const length = this.pending.readUInt32BE(1);
      if (tag !== ExecRecordTag.STDOUT && tag !== ExecRecordTag.STDERR && tag !== ExecRecordTag.EXIT) {
        throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec output: unknown record tag ${tag}`);
      }
      if (length > this.maxRecord) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec output: a ${length}-byte record (at most ${this.maxRecord})`);
      if (this.pending.length < EXEC_RECORD_HEADER + length) break;
      records.push({ tag, data: this.pending.subarray(EXEC_RECORD_HEADER, EXEC_RECORD_HEADER + length) });
      this.pending = this.pending.subarray(EXEC_RECORD_HEADER + length);
    }
    return records;
  }

  /** Bytes of an unfinished record (0 at a clean end). */
  get buffered(): number {
    return this.pending.length;
  }
}
