import { HEADER_SIZE, SENTINEL, decodeHeader, type Header } from './wire.js';

/** What a FrameReader reports; its owner decides what each header means right now. */
export interface FrameSink {
  /**
   * A header. Return true to take it (a DATA payload then follows through `payload`),
   * false if it does not belong here: while scanning the reader looks further; while
   * in sync it calls `desync()` and starts scanning at the next byte.
   */
  header(header: Header): boolean;
  /** Payload bytes of the DATA record taken last: a view of a chunk given to `feed()` (callers feed fresh chunks, so it may be kept). */
  payload(bytes: Buffer): void;
  /**
   * Bytes where a header had to be were not one we could take; the reader now scans.
   * `firstByte` is the byte found there: 0 is a new host's filler (see wire.ts).
   */
  desync(firstByte: number): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits an incoming byte stream into headers and payloads. Two modes: `scan` (skip
 * anything until a header the sink takes: stale bytes before a handshake) and in sync
 * (a header is expected at every record boundary). Memory: at most one partial header.
 */
export class FrameReader {
  private carry: Buffer = EMPTY;
  private payloadLeft = 0;
  private scanning: boolean;

  constructor(private readonly sink: FrameSink, options: { scanning: boolean }) {
    this.scanning = options.scanning;
  }

  /** Drop any partial record and look for the next header the sink takes. */
  scan(): void {
    this.scanning = true;
    this.payloadLeft = 0;
  }

  /** True while inside a DATA payload. */
  get inPayload(): boolean {
    return this.payloadLeft > 0;
  }

  /** True when the bytes fed so far end exactly at a record boundary (no partial header or payload). */
  get betweenRecords(): boolean {
    return this.payloadLeft === 0 && this.carry.length === 0;
  }

  feed(chunk: Buffer): void {
    let bytes = chunk;
    if (this.carry.length > 0) {
      bytes = Buffer.concat([this.carry, chunk]);
      this.carry = EMPTY;
    }
    let pos = 0;
    while (pos < bytes.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, bytes.length - pos);
        this.payloadLeft -= n;
        const start = pos;
        pos += n;
        this.sink.payload(bytes.subarray(start, pos));
        continue;
      }
      if (this.scanning) {
        const at = bytes.indexOf(SENTINEL, pos);
        if (at < 0) return;
        pos = at;
      }
      if (bytes.length - pos < HEADER_SIZE) {
        this.carry = Buffer.from(bytes.subarray(pos)); // a copy: small, and `bytes` may be a big chunk
        return;
      }
      const header = decodeHeader(bytes, pos);
      if (header !== undefined && this.sink.header(header)) {
        pos += HEADER_SIZE;
        this.scanning = false;
        this.payloadLeft = header.length;
        continue;
      }
      if (!this.scanning) {
        this.scanning = true;
        this.sink.desync(bytes[pos] as number);
      }
      pos += 1;
    }
  }
}
