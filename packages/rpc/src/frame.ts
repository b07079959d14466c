/**
 * Wire format (see README "Wire format"):
 *
 *   u32 BE  length   bytes after this field: 1 + 4 + headerLength + payload length
 *   u8      type     FrameType
 *   u32 BE  headerLength
 *   ...     header   UTF-8 JSON object, fields per type
 *   ...     payload  raw bytes (CHUNK frames only)
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

export const LENGTH_BYTES = 4;
/** type + headerLength */
export const FRAME_OVERHEAD = 5;
/** The smallest body: type, headerLength, and `{}`. */
export const MIN_FRAME_LENGTH = FRAME_OVERHEAD + 2;
export const DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024;

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

/** Header JSON of each frame type, as written. */
function headerOf(frame: Frame): Record<string, unknown> {
  switch (frame.type) {
    case 'REQUEST':
      return { id: frame.id, method: frame.method, params: frame.params, stream: frame.stream };
    case 'RESPONSE':
      return { id: frame.id, result: frame.result, stream: frame.stream };
    case 'ERROR':
      return { id: frame.id, code: frame.error.code, message: frame.error.message, data: frame.error.data };
    case 'NOTIFY':
      return { method: frame.method, params: frame.params };
    case 'CHUNK':
    case 'STOP':
      return { stream: frame.stream };
    case 'END':
      return frame.error ? { stream: frame.stream, code: frame.error.code, message: frame.error.message } : { stream: frame.stream };
    case 'CREDIT':
      return { stream: frame.stream, bytes: frame.bytes };
    case 'CANCEL':
      return { id: frame.id };
  }
}

/** `,"key":<json>` for a defined value (JSON.stringify may still drop it, as in an object). */
function jsonMember(key: string, value: unknown): string {
  if (value === undefined) return '';
  const json = JSON.stringify(value) as string | undefined;
  return json === undefined ? '' : `,"${key}":${json}`;
}

/**
 * Header JSON of a frame. REQUEST and RESPONSE, once per call each, are built as text
 * (no intermediate object); the same bytes JSON.stringify(headerOf(frame)) would give.
 */
function headerJson(frame: Frame): string {
  switch (frame.type) {
    case 'REQUEST':
      return `{"id":${frame.id},"method":${JSON.stringify(frame.method)}${jsonMember('params', frame.params)}${frame.stream === undefined ? '' : `,"stream":${frame.stream}`}}`;
    case 'RESPONSE':
      return `{"id":${frame.id}${jsonMember('result', frame.result)}${frame.stream === undefined ? '' : `,"stream":${frame.stream}`}}`;
    default:
      return JSON.stringify(headerOf(frame));
  }
}

/**
 * Encode a frame as [prefix+header, payload?]: the payload is never copied. Throws
 * (JSON.stringify) on values JSON cannot carry, such as BigInt or cycles.
 */
export function encodeFrame(frame: Frame): Buffer[] {
  const json = headerJson(frame);
  // One allocation for prefix + header: this runs for every call and every chunk. Small
  // headers get worst-case room (3 bytes per UTF-16 unit) so the JSON is encoded once;
  // big ones are measured first rather than over-allocated.
  const room = Buffer.allocUnsafe(LENGTH_BYTES + FRAME_OVERHEAD + (json.length <= 4096 ? json.length * 3 : Buffer.byteLength(json)));
  const headerLength = room.write(json, 9, 'utf8');
  const head = room.subarray(0, 9 + headerLength);
  const payload = frame.type === 'CHUNK' ? frame.payload : undefined;
  head.writeUInt32BE(FRAME_OVERHEAD + headerLength + (payload?.length ?? 0), 0);
  head[4] = FrameType[frame.type];
  head.writeUInt32BE(headerLength, 5);
  return payload && payload.length > 0 ? [head, payload] : [head];
}

/** Bytes a frame takes on the wire. */
export function encodedLength(parts: readonly Buffer[]): number {
  return parts.reduce((sum, part) => sum + part.length, 0);
}
