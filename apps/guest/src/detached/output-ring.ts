/**
 * The last `capacity` bytes one stream of a detached process wrote, addressed by absolute
 * offset (0 = its first byte ever). Bytes go into fixed-size blocks allocated as output
 * arrives, so memory follows what was written, up to capacity plus one block, however the
 * output is chunked (a trickle of 1-byte writes does not cost a Buffer each). Older bytes
 * are dropped, and counted, once capacity is exceeded. Pure data, no I/O.
 */
const BLOCK_BYTES = 16 * 1024;

export class OutputRing {
  private readonly blocks: Buffer[] = [];
  /** Absolute offset of blocks[0][0]. */
  private blocksStart = 0;
  /** Absolute offset of the oldest byte still readable (>= blocksStart). */
  private startOffset = 0;
  /** Absolute offset after the newest byte: everything ever written. */
  private endOffset = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`OutputRing capacity must be a positive integer, got ${capacity}`);
  }

  /** Everything written. */
  get total(): number {
    return this.endOffset;
  }

  /** Offset of the oldest byte kept: also how many bytes were dropped. */
  get start(): number {
    return this.startOffset;
  }

  get kept(): number {
    return this.endOffset - this.startOffset;
  }

  get dropped(): number {
    return this.startOffset;
  }

  /** Bytes the blocks hold (allocated), for tests of the memory bound. */
  get allocated(): number {
    return this.blocks.length * BLOCK_BYTES;
  }

  write(chunk: Uint8Array): void {
    let from = 0;
    // Only the last `capacity` bytes of a huge chunk can survive: skip the rest outright.
    if (chunk.length > this.capacity) {
      from = chunk.length - this.capacity;
      this.blocks.length = 0;
      this.endOffset += from;
      this.blocksStart = this.endOffset;
      this.startOffset = this.endOffset;
    }
    while (from < chunk.length) {
      const used = this.endOffset - this.blocksStart - (this.blocks.length - 1) * BLOCK_BYTES;
      let tail = this.blocks[this.blocks.length - 1];
      let offsetInTail = used;
      if (tail === undefined || used >= BLOCK_BYTES) {
        tail = Buffer.allocUnsafe(BLOCK_BYTES);
        this.blocks.push(tail);
        offsetInTail = 0;
      }
      const n = Math.min(BLOCK_BYTES - offsetInTail, chunk.length - from);
      tail.set(chunk.subarray(from, from + n), offsetInTail);
      from += n;
      this.endOffset += n;
    }
    if (this.endOffset - this.startOffset > this.capacity) this.startOffset = this.endOffset - this.capacity;
    // Whole blocks before the start are freed.
    while (this.blocks.length > 0 && this.blocksStart + BLOCK_BYTES <= this.startOffset) {
      this.blocks.shift();
      this.blocksStart += BLOCK_BYTES;
    }
  }

  /**
   * A copy of the kept bytes from absolute offset `from` (raised to `start` if older), at
   * most `max` of them; empty when there is nothing new.
   */
  read(from: number, max: number): Buffer {
    const begin = Math.max(from, this.startOffset);
    const end = Math.min(this.endOffset, begin + max);
    if (end <= begin) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(end - begin);
    let written = 0;
    let position = begin;
    while (position < end) {
      const index = Math.floor((position - this.blocksStart) / BLOCK_BYTES);
      const block = this.blocks[index] as Buffer;
      const inBlock = position - this.blocksStart - index * BLOCK_BYTES;
      const n = Math.min(BLOCK_BYTES - inBlock, end - position);
      block.copy(out, written, inBlock, inBlock + n);
      written += n;
      position += n;
    }
    return out;
  }
}
