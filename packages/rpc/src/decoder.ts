import { RpcError, RpcErrorCode } from './errors.js';
import { FRAME_OVERHEAD, FrameType, LENGTH_BYTES, MIN_FRAME_LENGTH, type Frame, type FrameTypeName, type WireError } from './frame.js';

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
const MAX_METHOD_LENGTH = 256;

class Malformed extends Error {
  constructor(
    message: string,
    readonly id: number | null = null,
  ) {
    super(message);
  }
}

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function field<T>(header: Record<string, unknown>, key: string, check: (v: unknown) => v is T, what: string, id: number | null = null): T {
  const value = header[key];
  if (!check(value)) throw new Malformed(`'${key}' must be ${what}`, id);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isMethod = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_METHOD_LENGTH;
const optionalId = (v: unknown): v is number | undefined => v === undefined || isId(v);
const idOrNull = (v: unknown): v is number | null => v === null || isId(v);
const isCredit = (v: unknown): v is number => isId(v) && v > 0;

function wireError(header: Record<string, unknown>, id: number | null): WireError {
  const code = field(header, 'code', isString, 'a string', id);
  const message = field(header, 'message', isString, 'a string', id);
  return header.data === undefined ? { code, message } : { code, message, data: header.data };
}

/**
 * Turn a frame body (type, headerLength, header, payload) at bytes[start, end) into a
 * checked Frame. Read in place: only a CHUNK's payload becomes a Buffer view.
 */
function parseBody(bytes: Buffer, start: number, end: number): Frame {
  const typeByte = bytes[start] as number;
  const type = TYPE_NAMES[typeByte];
  if (type === undefined) throw new Malformed(`unknown frame type ${typeByte}`);
  const headerLength = bytes.readUInt32BE(start + 1);
  const headerStart = start + FRAME_OVERHEAD;
  if (headerLength > end - headerStart) {
    throw new Malformed(`header length ${headerLength} exceeds the frame (${end - headerStart} bytes left)`);
  }
  const headerEnd = headerStart + headerLength;
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8', headerStart, headerEnd));
  } catch {
    throw new Malformed('the header is not valid JSON');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Malformed('the header is not a JSON object');
  const h = header as Record<string, unknown>;
  // A request id, read early so a bad request can still be answered.
  const id = type === 'REQUEST' && isId(h.id) ? h.id : null;
  if (type !== 'CHUNK' && headerEnd < end) throw new Malformed(`a ${type} frame carries no payload`, id);

  switch (type) {
    case 'REQUEST':
      return {
        type,
        id: field(h, 'id', isId, 'a non-negative integer'),
        method: field(h, 'method', isMethod, `a string of 1..${MAX_METHOD_LENGTH} characters`, id),
        params: h.params,
        stream: field(h, 'stream', optionalId, 'a stream id', id),
      };
    case 'RESPONSE':
      return { type, id: field(h, 'id', isId, 'a non-negative integer'), result: h.result, stream: field(h, 'stream', optionalId, 'a stream id') };
    case 'ERROR': {
      const errorId = field(h, 'id', idOrNull, 'a non-negative integer or null');
      return { type, id: errorId, error: wireError(h, errorId) };
    }
    case 'NOTIFY':
      return { type, method: field(h, 'method', isMethod, `a string of 1..${MAX_METHOD_LENGTH} characters`), params: h.params };
    case 'CHUNK':
      return { type, stream: field(h, 'stream', isId, 'a stream id'), payload: bytes.subarray(headerEnd, end) };
    case 'END':
      return { type, stream: field(h, 'stream', isId, 'a stream id'), error: h.code === undefined ? undefined : wireError(h, null) };
    case 'CREDIT':
      return { type, stream: field(h, 'stream', isId, 'a stream id'), bytes: field(h, 'bytes', isCredit, 'a positive integer') };
    case 'CANCEL':
      return { type, id: field(h, 'id', isId, 'a non-negative integer') };
    case 'STOP':
      return { type, stream: field(h, 'stream', isId, 'a stream id') };
  }
}

/**
 * Incremental frame decoder. The length prefix is checked against `maxFrameSize` before
 * anything is allocated; a frame that is too large or malformed is skipped by its
 * declared length (read and dropped, never buffered), so the stream stays in sync and
 * the peer can carry on. Buffered bytes never exceed `maxFrameSize`.
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

  constructor(readonly maxFrameSize: number) {}

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.partsLength + this.prefixFill;
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
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyLength < 0 && this.prefixFill === 0 && this.skipping === 0 && chunk.length - offset >= LENGTH_BYTES) {
        // Fast path, the usual case: a whole frame lies in this chunk. Decode it in place
        // (no copy of the prefix, no view per frame). The size checks come first as always.
        const length = chunk.readUInt32BE(offset);
        const start = offset + LENGTH_BYTES;
        if (length <= this.maxFrameSize && length >= MIN_FRAME_LENGTH && chunk.length - start >= length) {
          offset = start + length;
          decode(chunk, start, offset, sink);
          continue;
        }
      }
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, chunk.length - offset);
        this.skipping -= n;
        offset += n;
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
