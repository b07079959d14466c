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

/**
 * Encode a frame as [prefix+header, payload?]: the payload is never copied. Throws
 * (JSON.stringify) on values JSON cannot carry, such as BigInt or cycles.
 */
export function encodeFrame(frame: Frame): Buffer[] {
  const json = JSON.stringify(headerOf(frame));
  const headerLength = Buffer.byteLength(json, 'utf8');
  const payload = frame.type === 'CHUNK' ? frame.payload : undefined;
  const length = FRAME_OVERHEAD + headerLength + (payload?.length ?? 0);
  // One allocation for prefix + header: this runs for every call and every chunk.
  const head = Buffer.allocUnsafe(LENGTH_BYTES + FRAME_OVERHEAD + headerLength);
  head.writeUInt32BE(length, 0);
  head.writeUInt8(FrameType[frame.type], 4);
  head.writeUInt32BE(headerLength, 5);
  head.write(json, 9, 'utf8');
  return payload && payload.length > 0 ? [head, payload] : [head];
}

/** Bytes a frame takes on the wire. */
export function encodedLength(parts: readonly Buffer[]): number {
  return parts.reduce((sum, part) => sum + part.length, 0);
}
