import { VmlinkError } from '@vmlink/errors';

/**
 * The one framing every streamed agent body uses (exec output, exec input, detached
 * attach): records of a 1-byte tag, a u32 BE length and the bytes.
 */
export const RECORD_HEADER = 5;

export interface TaggedRecord<Tag extends number> {
  readonly tag: Tag;
  readonly data: Buffer;
}

export function encodeTaggedRecord(tag: number, data: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(RECORD_HEADER);
  header.writeUInt8(tag, 0);
  header.writeUInt32BE(data.length, 1);
  return Buffer.concat([header, data]);
}

/**
 * Splits a byte stream into records, whatever the chunking. Holds at most one record
 * (bounded by `maxRecord`); an unknown tag or an oversized record is `ERR_VMLINK_PROTOCOL`
 * naming it and the body (`what`).
 */
export class TaggedRecordDecoder<Tag extends number> {
  private pending: Buffer = Buffer.alloc(0);
  private readonly tags: ReadonlySet<number>;

  constructor(
    tags: readonly Tag[],
    private readonly what: string,
    private readonly maxRecord: number,
  ) {
    this.tags = new Set(tags);
  }

  /** Records completed by `chunk`, in order. */
  push(chunk: Uint8Array): TaggedRecord<Tag>[] {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    const records: TaggedRecord<Tag>[] = [];
    while (this.pending.length >= RECORD_HEADER) {
      const tag = this.pending.readUInt8(0);
      const length = this.pending.readUInt32BE(1);
      if (!this.tags.has(tag)) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `${this.what}: unknown record tag ${tag}`);
      if (length > this.maxRecord) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `${this.what}: a ${length}-byte record (at most ${this.maxRecord})`);
      if (this.pending.length < RECORD_HEADER + length) break;
      records.push({ tag: tag as Tag, data: this.pending.subarray(RECORD_HEADER, RECORD_HEADER + length) });
      this.pending = this.pending.subarray(RECORD_HEADER + length);
    }
    return records;
  }

  /** Bytes of an unfinished record (0 at a clean end). */
  get buffered(): number {
    return this.pending.length;
  }
}
