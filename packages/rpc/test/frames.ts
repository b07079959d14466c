import type { Frame } from '@vmlink/rpc';

/** Seeded random frames and mutations, shared by the decoder fuzz and the peer-level flood tests. */

const METHODS = ['m', 'echo', 'fs.stat', 'méthode', '✓'.repeat(200)];

export function randomFrame(rand: () => number): Frame {
  // Small ids mostly, sometimes ones that need all 32 bits.
  const id = rand() < 0.9 ? Math.floor(rand() * 1000) : Math.floor(rand() * 0x1_0000_0000);
  const text = 'x'.repeat(Math.floor(rand() * 200));
  const method = METHODS[Math.floor(rand() * METHODS.length)] as string;
  switch (Math.floor(rand() * 9)) {
    case 0:
      return { type: 'REQUEST', id, method, params: rand() < 0.2 ? undefined : { text, n: rand() }, stream: rand() < 0.3 ? id : undefined };
    case 1:
      return { type: 'RESPONSE', id, result: rand() < 0.2 ? undefined : [text, null, true], stream: rand() < 0.3 ? id : undefined };
    case 2:
      return { type: 'ERROR', id: rand() < 0.5 ? null : id, error: rand() < 0.5 ? { code: 'E_X', message: text } : { code: 'E_X', message: text, data: { n: id } } };
    case 3:
      return { type: 'NOTIFY', method, params: text };
    case 4:
      return { type: 'CHUNK', stream: id, payload: Buffer.from(text) };
    case 5:
      return { type: 'END', stream: id, error: rand() < 0.5 ? undefined : { code: 'E_Y', message: 'bad' } };
    case 6:
      return { type: 'CREDIT', stream: id, bytes: id + 1 };
    case 7:
      return { type: 'CANCEL', id };
    default:
      return { type: 'STOP', stream: id };
  }
}

/** Offsets of the fixed binary fields: length 0-3, type 4, flags 5, id 6-9, then stream/method length. */
const TYPE_AT = 4;
const FLAGS_AT = 5;

export function mutate(bytes: Buffer, rand: () => number): Buffer {
  const out = Buffer.from(bytes);
  const edits = 1 + Math.floor(rand() * 4);
  let result = out;
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * Math.max(1, result.length));
    switch (Math.floor(rand() * 8)) {
      case 0: // flip a bit
        if (result.length > 0) result[at] = (result[at] as number) ^ (1 << Math.floor(rand() * 8));
        break;
      case 1: // random byte
        if (result.length > 0) result[at] = Math.floor(rand() * 256);
        break;
      case 2: // truncate
        result = result.subarray(0, at);
        break;
      case 3: // insert random bytes
        result = Buffer.concat([result.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))), result.subarray(at)]);
        break;
      case 4: // another frame type, often a neighbouring or unknown one
        if (result.length > TYPE_AT) result[TYPE_AT] = Math.floor(rand() * 12);
        break;
      case 5: // a flag bit (some valid on other types, some on none)
        if (result.length > FLAGS_AT) result[FLAGS_AT] = (result[FLAGS_AT] as number) ^ (1 << Math.floor(rand() * 8));
        break;
      case 6: {
        // a 16-bit field after the head (a method length, part of a stream id or credit) rewritten
        const field = rand() < 0.5 ? 10 : 14;
        if (result.length >= field + 2) result.writeUInt16BE(rand() < 0.5 ? Math.floor(rand() * 0x10000) : Math.floor(rand() * 16), field);
        break;
      }
      default: // rewrite the length prefix, often to something huge
        if (result.length >= 4) result.writeUInt32BE(Math.floor(rand() * 0xffffffff), 0);
    }
  }
  return result;
}

