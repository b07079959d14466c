/**
 * Wire format (see README "Wire format"): a fixed binary head, then a type-specific tail.
 *
 *   u32 BE  length   bytes after this field
 *   u8      type     FrameType
 *   u8      flags    FrameFlag bits
 *   u32 BE  id       request id (REQUEST, RESPONSE, ERROR, CANCEL), stream id (CHUNK,
 *                    END, CREDIT, STOP), 0 (NOTIFY)
 *   ...     by type: REQUEST  [u32 stream] u16 methodLength, method, params JSON
 *                    RESPONSE [u32 stream] result JSON
 *                    ERROR    JSON {code, message, data?}      NOTIFY  u16 methodLength, method, params JSON
 *                    CHUNK    payload                          END     nothing, or JSON {code, message}
 *                    CREDIT   u32 bytes                        CANCEL, STOP  nothing
 *
 * Only values (params, result, error) are JSON; an empty JSON tail means "none".
 */
export const FrameType = {
  REQUEST: 1,
  RESPONSE: 2,
  ERROR: 3,
  NOTIFY: 4,
  CHUNK: 5,
  END: 6,
  CREDIT: 7,
  CANCEL: 8,
  STOP: 9,
} as const;
export type FrameTypeName = keyof typeof FrameType;

export const FrameFlag = {
  /** REQUEST, RESPONSE: a u32 stream id follows the id (a body follows as CHUNKs). */
  STREAM: 0x01,
  /** ERROR: about a frame, not a call (the id field is 0 and means nothing). */
  NO_ID: 0x02,
} as const;

export const LENGTH_BYTES = 4;
/** type + flags + id: the part of every frame after the length. */
export const FRAME_HEAD = 6;
/** The smallest frame body (CANCEL, STOP, a NOTIFY/CHUNK/END... with nothing after the head). */
export const MIN_FRAME_LENGTH = FRAME_HEAD;
export const DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024;
/** Ids and stream ids travel as u32. */
export const MAX_ID = 0xffff_ffff;
/** Longest method name, in UTF-16 units (as JS counts string length). */
export const MAX_METHOD_LENGTH = 256;

export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly data?: unknown;
}

export type Frame =
  | { type: 'REQUEST'; id: number; method: string; params: unknown; stream: number | undefined }
  | { type: 'RESPONSE'; id: number; result: unknown; stream: number | undefined }
  | { type: 'ERROR'; id: number | null; error: WireError }
  | { type: 'NOTIFY'; method: string; params: unknown }
  | { type: 'CHUNK'; stream: number; payload: Buffer }
  | { type: 'END'; stream: number; error: WireError | undefined }
  | { type: 'CREDIT'; stream: number; bytes: number }
  | { type: 'CANCEL'; id: number }
  | { type: 'STOP'; stream: number };

/** JSON text of a value, or '' when there is none (undefined, or what JSON.stringify drops). */
function jsonOf(value: unknown): string {
  if (value === undefined) return '';
  return (JSON.stringify(value) as string | undefined) ?? '';
}

function errorJson(error: WireError, withData: boolean): string {
  return JSON.stringify(withData && error.data !== undefined ? { code: error.code, message: error.message, data: error.data } : { code: error.code, message: error.message });
}

/** Slab size for frame heads: many small frames share one allocation. */
const SLAB_SIZE = 64 * 1024;
/** Heads that could need more than this get a buffer of their own. */
const MAX_SLAB_ROOM = 8 * 1024;

/**
 * Encodes frames into views of a shared slab: one Buffer object per frame, no
 * over-allocation left behind (the slab moves on by the bytes used). A slab is never
 * written twice, so a frame still queued in a stream stays intact.
 */
class HeadAllocator {
  private slab = Buffer.allocUnsafe(SLAB_SIZE);
  private used = 0;

  /** Where the last `reserve` room starts in its buffer. */
  offset = 0;

  /** A buffer with at least `room` bytes free at `this.offset`; `commit` the bytes used. */
  reserve(room: number): Buffer {
    if (room > MAX_SLAB_ROOM) {
      this.offset = 0;
      return Buffer.allocUnsafe(room);
    }
    if (this.used + room > SLAB_SIZE) {
      this.slab = Buffer.allocUnsafe(SLAB_SIZE);
      this.used = 0;
    }
    this.offset = this.used;
    return this.slab;
  }

  commit(buffer: Buffer, offset: number, length: number): Buffer {
    if (buffer === this.slab) this.used = offset + length;
    return buffer.subarray(offset, offset + length);
  }
}

const heads = new HeadAllocator();

/** Room for a UTF-16 string in UTF-8: measured when big, worst case (3 bytes a unit) when small. */
function utf8Room(text: string): number {
  return text.length <= 2048 ? text.length * 3 : Buffer.byteLength(text);
}

/**
 * Encode a frame as [head, payload?]: a CHUNK's payload is never copied. Throws
 * (JSON.stringify) on values JSON cannot carry, such as BigInt or cycles, and
 * ERR_OUT_OF_RANGE on ids above MAX_ID.
 */
export function encodeFrame(frame: Frame): Buffer[] {
  let id = 0;
  let flags = 0;
  let stream = -1;
  let method = '';
  let json = '';
  let credit = -1;
  switch (frame.type) {
    case 'REQUEST':
      ({ id, method } = frame);
      json = jsonOf(frame.params);
      if (frame.stream !== undefined) stream = frame.stream;
      break;
    case 'RESPONSE':
      id = frame.id;
      json = jsonOf(frame.result);
      if (frame.stream !== undefined) stream = frame.stream;
      break;
    case 'ERROR':
      if (frame.id === null) flags = FrameFlag.NO_ID;
      else id = frame.id;
      json = errorJson(frame.error, true);
      break;
    case 'NOTIFY':
      method = frame.method;
      json = jsonOf(frame.params);
      break;
    case 'END':
      id = frame.stream;
      if (frame.error) json = errorJson(frame.error, false);
      break;
    case 'CREDIT':
      id = frame.stream;
      credit = frame.bytes;
      break;
    case 'CANCEL':
      id = frame.id;
      break;
    case 'CHUNK':
    case 'STOP':
      id = frame.stream;
      break;
  }
  if (stream >= 0) flags |= FrameFlag.STREAM;
  const hasMethod = frame.type === 'REQUEST' || frame.type === 'NOTIFY';
  const room = LENGTH_BYTES + FRAME_HEAD + 4 + 4 + 2 + (hasMethod ? method.length * 3 : 0) + utf8Room(json);
  const buffer = heads.reserve(room);
  const offset = heads.offset;
  let at = offset + LENGTH_BYTES;
  buffer[at++] = FrameType[frame.type];
  buffer[at++] = flags;
  at = buffer.writeUInt32BE(id, at);
  if (stream >= 0) at = buffer.writeUInt32BE(stream, at);
  if (credit >= 0) at = buffer.writeUInt32BE(credit, at);
  if (hasMethod) {
    const methodBytes = buffer.write(method, at + 2, 'utf8');
    buffer.writeUInt16BE(methodBytes, at);
    at += 2 + methodBytes;
  }
  if (json.length > 0) at += buffer.write(json, at, 'utf8');
  const payload = frame.type === 'CHUNK' ? frame.payload : undefined;
  buffer.writeUInt32BE(at - offset - LENGTH_BYTES + (payload?.length ?? 0), offset);
  const head = heads.commit(buffer, offset, at - offset);
  return payload && payload.length > 0 ? [head, payload] : [head];
}
