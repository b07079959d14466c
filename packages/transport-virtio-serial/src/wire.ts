import { randomBytes } from 'node:crypto';

/**
 * The wire format (see README "Wire protocol"). Every unit starts with a 16-byte header:
 *
 *   0      0xFF            sentinel (the qemu-guest-agent resync byte)
 *   1..2   'v' 's'         magic
 *   3      type            'H' hello, 'A' ack, 'O' open, 'D' data, 'E' end
 *   4..11  nonce           8 random bytes chosen by the host for this Connection
 *   12..15 length          payload bytes that follow (u32 BE): 1..MAX_PAYLOAD for 'D', 0 otherwise
 *
 * After the handshake (host: HELLO, guest: ACK, host: OPEN) user bytes travel as DATA
 * records, so the reader always knows where a header must be: user bytes are never
 * parsed, and a header carrying another nonce (a new host) or no header at all (bytes
 * left by a host that vanished mid-record) is seen at the next record boundary.
 */
export const HEADER_SIZE = 16;
export const SENTINEL = 0xff;
const MAGIC_1 = 0x76; // 'v'
const MAGIC_2 = 0x73; // 's'
/**
 * Largest payload of one DATA record; bigger writes are split. Small on purpose: a host
 * that vanished mid-record can leave at most this much unfinished, and a new host
 * flushes that out with FILLER_SIZE bytes before its HELLO.
 */
export const MAX_PAYLOAD = 16 * 1024;
/**
 * Zero bytes a host sends before its first HELLO. They complete any record a former host
 * left unfinished (its reader then meets zeros where a header must be, and resyncs), so
 * the HELLO is always seen. Zeros are never a header: a header starts with 0xFF.
 */
export const FILLER_SIZE = MAX_PAYLOAD + HEADER_SIZE;

export const FrameType = {
  hello: 0x48, // 'H'
  ack: 0x41, // 'A'
  open: 0x4f, // 'O'
  data: 0x44, // 'D'
  end: 0x45, // 'E'
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const TYPES = new Set<number>(Object.values(FrameType));

export interface Header {
  readonly type: FrameType;
  /** The Connection's nonce, as one number for cheap comparison. */
  readonly nonce: bigint;
  readonly length: number;
}

/** A fresh random nonce for one Connection. */
export function newNonce(): bigint {
  return randomBytes(8).readBigUInt64BE(0);
}

export function encodeHeader(type: FrameType, nonce: bigint, length = 0): Buffer {
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  header[0] = SENTINEL;
  header[1] = MAGIC_1;
  header[2] = MAGIC_2;
  header[3] = type;
  header.writeBigUInt64BE(nonce, 4);
  header.writeUInt32BE(length, 12);
  return header;
}

/** The header at `offset` (HEADER_SIZE bytes must be there), or undefined if it is not one. */
export function decodeHeader(bytes: Buffer, offset: number): Header | undefined {
  if (bytes[offset] !== SENTINEL || bytes[offset + 1] !== MAGIC_1 || bytes[offset + 2] !== MAGIC_2) return undefined;
  const type = bytes[offset + 3] as number;
  if (!TYPES.has(type)) return undefined;
  const length = bytes.readUInt32BE(offset + 12);
  const lengthOk = type === FrameType.data ? length >= 1 && length <= MAX_PAYLOAD : length === 0;
  if (!lengthOk) return undefined;
  return { type: type as FrameType, nonce: bytes.readBigUInt64BE(offset + 4), length };
}

/**
 * User chunks as DATA records: [header, payload, header, payload...]. Payloads are
 * views of the caller's chunks (no copy); chunks over MAX_PAYLOAD are split.
 */
export function encodeData(nonce: bigint, chunks: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length; offset += MAX_PAYLOAD) {
      const payload = chunk.subarray(offset, Math.min(chunk.length, offset + MAX_PAYLOAD));
      out.push(encodeHeader(FrameType.data, nonce, payload.length), payload);
    }
  }
  return out;
}

export function describeNonce(nonce: bigint): string {
  return nonce.toString(16).padStart(16, '0');
}
