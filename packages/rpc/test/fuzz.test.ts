import { describe, expect, it } from 'vitest';
import { FrameDecoder, encodeFrame, type Decoded, type Frame } from '@vmlink/rpc';
import { prng } from './pair.js';

const MAX = 4096;
const CODES = new Set(['ERR_VMLINK_RPC_FRAME_TOO_LARGE', 'ERR_VMLINK_RPC_MALFORMED_FRAME']);

const METHODS = ['m', 'echo', 'fs.stat', 'méthode', '✓'.repeat(200)];

function randomFrame(rand: () => number): Frame {
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

function mutate(bytes: Buffer, rand: () => number): Buffer {
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

/** Feed `input` in random-sized pieces; check every output and the buffer bound. */
function feed(decoder: FrameDecoder, input: Buffer, rand: () => number): Decoded[] {
  const out: Decoded[] = [];
  for (let offset = 0; offset < input.length; ) {
    const n = 1 + Math.floor(rand() * 300);
    out.push(...decoder.push(input.subarray(offset, offset + n)));
    offset += n;
    if (decoder.bufferedBytes > MAX) throw new Error(`decoder holds ${decoder.bufferedBytes} bytes > ${MAX}`);
  }
  return out;
}

describe('FrameDecoder fuzz (seeded)', () => {
  it('100,000 random and mutated inputs: no crash, buffer bounded, only coded errors', () => {
    const rand = prng(0x5eed1234);
    let frames = 0;
    let errors = 0;
    for (let i = 0; i < 100_000; i++) {
      // A fresh decoder per input most of the time; sometimes one carries on from the
      // previous garbage, as a live connection would.
      const decoder = new FrameDecoder(MAX);
      let input: Buffer;
      const kind = i % 3;
      if (kind === 0) {
        input = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      } else {
        const valid = Buffer.concat(encodeFrame(randomFrame(rand)));
        input = kind === 1 ? mutate(valid, rand) : Buffer.concat([mutate(valid, rand), valid]);
      }
      for (const item of feed(decoder, input, rand)) {
        if (item.kind === 'frame') frames += 1;
        else {
          errors += 1;
          if (!CODES.has(item.error.code) || item.error.message.length === 0) throw new Error(`unexpected error ${item.error.code}: ${item.error.message}`);
        }
      }
    }
    // The corpus really exercises both paths.
    expect(frames).toBeGreaterThan(5_000);
    expect(errors).toBeGreaterThan(10_000);
  }, 120_000);

  it('valid frames decode exactly, however the bytes are split', () => {
    const rand = prng(42);
    for (let i = 0; i < 2000; i++) {
      const batch = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => randomFrame(rand));
      const bytes = Buffer.concat(batch.flatMap((f) => encodeFrame(f)));
      const decoded = feed(new FrameDecoder(MAX), bytes, rand);
      expect(decoded.map((d) => (d.kind === 'frame' ? d.frame : d.error.message))).toEqual(batch);
    }
  }, 60_000);

  it('a declared length of 4 GiB is refused at once and skipped without buffering', () => {
    const decoder = new FrameDecoder(MAX);
    const prefix = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const [first] = decoder.push(prefix);
    expect(first).toMatchObject({ kind: 'error', error: { code: 'ERR_VMLINK_RPC_FRAME_TOO_LARGE' } });
    for (let i = 0; i < 100; i++) expect(decoder.push(Buffer.alloc(64 * 1024))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(0);
  });
});
