import { describe, expect, it } from 'vitest';
import { FrameDecoder, encodeFrame, type Decoded } from '@vmlink/rpc';
import { mutate, randomFrame } from './frames.js';
import { prng } from './pair.js';

const MAX = 4096;
const CODES = new Set(['ERR_VMLINK_RPC_FRAME_TOO_LARGE', 'ERR_VMLINK_RPC_MALFORMED_FRAME']);

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
