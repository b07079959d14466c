import { RpcError, RpcErrorCode } from './errors.js';
import { FRAME_HEAD, FrameFlag, FrameType, LENGTH_BYTES, MAX_METHOD_LENGTH, MIN_FRAME_LENGTH, type Frame, type FrameTypeName, type WireError } from './frame.js';

/** One decoder output: a frame, or a coded error for a frame that was skipped. */
export type Decoded =
  | { readonly kind: 'frame'; readonly frame: Frame }
  | {
      readonly kind: 'error';
      readonly error: RpcError;
      /** The request id, when the bad frame was a request whose id could be read. */
      readonly id: number | null;
    };

/** Where `FrameDecoder.feed` delivers what it decodes, in wire order. */
export interface FrameSink {
  frame(frame: Frame): void;
  /** A frame that was skipped; `id` is the request id when it could be read. */
  malformed(error: RpcError, id: number | null): void;
}

/** Frame type names by type byte (a plain array: looked up once per frame). */
const TYPE_NAMES: Array<FrameTypeName | undefined> = [];
for (const [name, value] of Object.entries(FrameType)) TYPE_NAMES[value] = name as FrameTypeName;
/** Flag bits each frame type may carry; any other bit is malformed. */
const ALLOWED_FLAGS: number[] = [];
ALLOWED_FLAGS[FrameType.REQUEST] = FrameFlag.STREAM;
ALLOWED_FLAGS[FrameType.RESPONSE] = FrameFlag.STREAM;
ALLOWED_FLAGS[FrameType.ERROR] = FrameFlag.NO_ID;

class Malformed extends Error {
  constructor(
    message: string,
    readonly id: number | null = null,
  ) {
    super(message);
  }
}

/**
 * A frame body being read: bounds-checked reads that fail as Malformed. One instance,
 * reset per frame (parsing is synchronous and never re-entered): no allocation per frame.
 */
class Cursor {
  bytes: Buffer = Buffer.alloc(0);
  at = 0;
  end = 0;
  /** The request id, once known, so a bad request can still be answered. */
  id: number | null = null;

  reset(bytes: Buffer, at: number, end: number, id: number | null): this {
    this.bytes = bytes;
    this.at = at;
    this.end = end;
    this.id = id;
    return this;
  }

  u32(what: string): number {
    if (this.end - this.at < 4) throw new Malformed(`the frame ends before its ${what}`, this.id);
    const value = this.bytes.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  method(): string {
    if (this.end - this.at < 2) throw new Malformed('the frame ends before its method length', this.id);
    const length = this.bytes.readUInt16BE(this.at);
    const start = this.at + 2;
    if (length > this.end - start) throw new Malformed(`method length ${length} exceeds the frame (${this.end - start} bytes left)`, this.id);
    this.at = start + length;
    const method = this.bytes.toString('utf8', start, this.at);
    if (method.length === 0 || method.length > MAX_METHOD_LENGTH) {
      throw new Malformed(`'method' must be a string of 1..${MAX_METHOD_LENGTH} characters`, this.id);
    }
    return method;
  }

  /** The rest of the frame as a JSON value; undefined when nothing is left. */
  json(what: string): unknown {
    if (this.at === this.end) return undefined;
    try {
      return JSON.parse(this.bytes.toString('utf8', this.at, this.end));
    } catch {
      throw new Malformed(`the ${what} is not valid JSON`, this.id);
    } finally {
      this.at = this.end;
    }
  }

  /** An error object {code, message, data?} making up the rest of the frame. */
  error(): WireError {
    const value = this.json('error');
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Malformed('the error is not a JSON object', this.id);
    const { code, message, data } = value as Record<string, unknown>;
    if (typeof code !== 'string') throw new Malformed("'code' must be a string", this.id);
    if (typeof message !== 'string') throw new Malformed("'message' must be a string", this.id);
    return data === undefined ? { code, message } : { code, message, data };
  }

  /** Nothing may follow what was read. */
  done(type: FrameTypeName): void {
    if (this.at !== this.end) throw new Malformed(`${this.end - this.at} bytes follow a complete ${type} frame`, this.id);
  }
}

const CURSOR = new Cursor();

/**
 * Turn a frame body (type, flags, id, type-specific fields) at bytes[start, end) into a
 * checked Frame. Read in place: only a CHUNK's payload becomes a Buffer view.
 */
function parseBody(bytes: Buffer, start: number, end: number): Frame {
  const typeByte = bytes[start] as number;
  const type = TYPE_NAMES[typeByte];
  if (type === undefined) throw new Malformed(`unknown frame type ${typeByte}`);
  const flags = bytes[start + 1] as number;
  const id = bytes.readUInt32BE(start + 2);
  const cursor = CURSOR.reset(bytes, start + FRAME_HEAD, end, type === 'REQUEST' ? id : null);
  if ((flags & ~(ALLOWED_FLAGS[typeByte] ?? 0)) !== 0) throw new Malformed(`flags 0x${flags.toString(16)} are not valid on a ${type} frame`, cursor.id);
  const stream = (flags & FrameFlag.STREAM) === 0 ? undefined : cursor.u32('stream id');

  switch (type) {
    case 'REQUEST': {
      const method = cursor.method();
      return { type, id, method, params: cursor.json('params'), stream };
    }
    case 'RESPONSE':
      return { type, id, result: cursor.json('result'), stream };
    case 'ERROR': {
      const errorId = (flags & FrameFlag.NO_ID) === 0 ? id : null;
      return { type, id: errorId, error: cursor.error() };
    }
    case 'NOTIFY': {
      const method = cursor.method();
      return { type, method, params: cursor.json('params') };
    }
    case 'CHUNK':
      return { type, stream: id, payload: bytes.subarray(cursor.at, end) };
    case 'END':
      return { type, stream: id, error: cursor.at === end ? undefined : cursor.error() };
    case 'CREDIT': {
      const credit = cursor.u32('credit');
      cursor.done(type);
      if (credit === 0) throw new Malformed("'bytes' must be a positive integer");
      return { type, stream: id, bytes: credit };
    }
    case 'CANCEL':
      cursor.done(type);
      return { type, id };
    case 'STOP':
      cursor.done(type);
      return { type, stream: id };
  }
}

/**
 * Incremental frame decoder. The length prefix is checked against `maxFrameSize` before
 * anything is allocated; a frame that is too large or malformed is skipped by its
 * declared length (read and dropped, never buffered), so the stream stays in sync and
 * the peer can carry on. Buffered bytes never exceed `maxFrameSize`.
 *
 * `pause()` (from inside a sink callback, or between feeds) stops delivery after the
 * current frame: the rest of the chunk being decoded, and chunks fed meanwhile, are held
 * undecoded until `resume()`. That is how a peer stops acting on a connection at once
 * (its replies are not being read) without waiting for the next read.
 */
export class FrameDecoder {
  private readonly prefix = Buffer.alloc(LENGTH_BYTES);
  private prefixFill = 0;
  /** Body length of the frame being collected, or -1 while reading a prefix. */
  private bodyLength = -1;
  private readonly parts: Buffer[] = [];
  private partsLength = 0;
  /** Bytes of a rejected frame still to drop. */
  private skipping = 0;
  private paused = false;
  private stopped = false;
  private feeding = false;
  /** Chunks (or the rest of one) read while paused, in wire order. */
  private readonly held: Buffer[] = [];
  private heldLength = 0;
  private ended = 0;
  private lastLength = 0;

  constructor(readonly maxFrameSize: number) {}

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.partsLength + this.prefixFill;
  }

  /** Bytes received while paused and not decoded yet. */
  get heldBytes(): number {
    return this.heldLength;
  }

  /** True while a frame has started (some of its bytes arrived) and has not ended. */
  get inFrame(): boolean {
    return this.prefixFill > 0 || this.bodyLength >= 0 || this.skipping > 0;
  }

  /** Frames that ended so far (decoded, or skipped to their end): tells one frame in progress from the next. */
  get framesEnded(): number {
    return this.ended;
  }

  /** Wire length (prefix included) of the frame delivered last. */
  get lastFrameLength(): number {
    return this.lastLength;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Stop delivering after the current frame; what arrives is held until `resume`. */
  pause(): void {
    this.paused = true;
  }

  /** Deliver what was held, then carry on with what is fed. */
  resume(sink: FrameSink): void {
    if (this.stopped) return;
    this.paused = false;
    if (this.feeding) return; // called from a sink callback: the running loop carries on
    while (!this.paused && this.held.length > 0) {
      const chunk = this.held.shift() as Buffer;
      this.heldLength -= chunk.length;
      this.run(chunk, sink);
    }
  }

  /** Stop for good: drop everything held and buffered, and all that is fed from now on. */
  stop(): void {
    this.stopped = true;
    this.paused = true;
    this.held.length = 0;
    this.heldLength = 0;
    this.parts.length = 0;
    this.partsLength = 0;
    this.prefixFill = 0;
    this.bodyLength = -1;
    this.skipping = 0;
  }

  /** Decode what `chunk` completes; returns the frames and errors in wire order. */
  push(chunk: Buffer): Decoded[] {
    const out: Decoded[] = [];
    this.feed(chunk, {
      frame: (frame) => out.push({ kind: 'frame', frame }),
      malformed: (error, id) => out.push({ kind: 'error', error, id }),
    });
    return out;
  }

  /** Decode what `chunk` completes and hand each frame or error to `sink` as it is read (no array per read). */
  feed(chunk: Buffer, sink: FrameSink): void {
    if (this.paused || this.held.length > 0) {
      this.hold(chunk, false);
      return;
    }
    this.run(chunk, sink);
  }

  private hold(chunk: Buffer, first: boolean): void {
    if (chunk.length === 0 || this.stopped) return;
    if (first) this.held.unshift(chunk);
    else this.held.push(chunk);
    this.heldLength += chunk.length;
  }

  private run(chunk: Buffer, sink: FrameSink): void {
    this.feeding = true;
    try {
      this.decodeChunk(chunk, sink);
    } finally {
      this.feeding = false;
    }
  }

  private decodeChunk(chunk: Buffer, sink: FrameSink): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.paused) {
        this.hold(chunk.subarray(offset), true);
        return;
      }
      if (this.bodyLength < 0 && this.prefixFill === 0 && this.skipping === 0 && chunk.length - offset >= LENGTH_BYTES) {
        // Fast path, the usual case: a whole frame lies in this chunk. Decode it in place
        // (no copy of the prefix, no view per frame). The size checks come first as always.
        const length = chunk.readUInt32BE(offset);
        const start = offset + LENGTH_BYTES;
        if (length <= this.maxFrameSize && length >= MIN_FRAME_LENGTH && chunk.length - start >= length) {
          offset = start + length;
          this.ended += 1;
          this.lastLength = LENGTH_BYTES + length;
          decode(chunk, start, offset, sink);
          continue;
        }
      }
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, chunk.length - offset);
        this.skipping -= n;
        offset += n;
        if (this.skipping === 0) this.ended += 1;
      } else if (this.bodyLength < 0) {
        const n = Math.min(LENGTH_BYTES - this.prefixFill, chunk.length - offset);
        chunk.copy(this.prefix, this.prefixFill, offset, offset + n);
        this.prefixFill += n;
        offset += n;
        if (this.prefixFill === LENGTH_BYTES) this.startFrame(this.prefix.readUInt32BE(0), sink);
      } else {
        const n = Math.min(this.bodyLength - this.partsLength, chunk.length - offset);
        this.parts.push(chunk.subarray(offset, offset + n));
        this.partsLength += n;
        offset += n;
        if (this.partsLength === this.bodyLength) this.finishFrame(sink);
      }
    }
  }

  private startFrame(length: number, sink: FrameSink): void {
    this.prefixFill = 0;
    if (length > this.maxFrameSize) {
      this.skipping = length;
      sink.malformed(new RpcError(RpcErrorCode.FRAME_TOO_LARGE, `frame of ${length} bytes exceeds maxFrameSize ${this.maxFrameSize}; skipped`), null);
    } else if (length < MIN_FRAME_LENGTH) {
      this.skipping = length;
      if (length === 0) this.ended += 1;
      sink.malformed(new RpcError(RpcErrorCode.MALFORMED_FRAME, `frame of ${length} bytes is shorter than the minimum ${MIN_FRAME_LENGTH}; skipped`), null);
    } else {
      this.bodyLength = length;
    }
  }

  private finishFrame(sink: FrameSink): void {
    const body = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.partsLength);
    this.parts.length = 0;
    this.partsLength = 0;
    this.bodyLength = -1;
    this.ended += 1;
    this.lastLength = LENGTH_BYTES + body.length;
    decode(body, 0, body.length, sink);
  }
}

function decode(bytes: Buffer, start: number, end: number, sink: FrameSink): void {
  let frame: Frame;
  try {
    frame = parseBody(bytes, start, end);
  } catch (caught) {
    if (!(caught instanceof Malformed)) throw caught;
    sink.malformed(new RpcError(RpcErrorCode.MALFORMED_FRAME, `malformed frame: ${caught.message}`), caught.id);
    return;
  }
  sink.frame(frame);
}
