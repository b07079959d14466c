import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_FRAME_SIZE, FrameDecoder, RpcPeer, encodeFrame, type Decoded, type FrameSink, type RpcError, type RpcPeerOptions } from '@vmlink/rpc';
import { mutate, randomFrame } from './frames.js';
import { prng, socketPair } from './pair.js';

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

  it('pause() from a sink stops after that frame; the rest of the chunk and later chunks wait for resume(), in order; stop() drops them', () => {
    const frames = Array.from({ length: 10 }, (_, id) => ({ type: 'CANCEL' as const, id }));
    const bytes = Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
    const decoder = new FrameDecoder(MAX);
    const got: number[] = [];
    const sink: FrameSink = {
      frame: (frame) => {
        const id = frame.type === 'CANCEL' ? frame.id : -1;
        got.push(id);
        if (id === 2 || id === 6) decoder.pause();
      },
      malformed: () => {
        throw new Error('no malformed frames here');
      },
    };
    decoder.feed(bytes.subarray(0, 70), sink);
    expect(got).toEqual([0, 1, 2]);
    expect(decoder.isPaused).toBe(true);
    expect(decoder.heldBytes).toBe(70 - 30);
    decoder.feed(bytes.subarray(70), sink); // arrives while paused: held behind the rest
    expect(got).toEqual([0, 1, 2]);
    decoder.resume(sink);
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(decoder.framesEnded).toBe(7);
    decoder.stop();
    decoder.resume(sink);
    decoder.feed(bytes, sink);
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(decoder.heldBytes).toBe(0);
  });

  it('inFrame tells a split frame in progress; framesEnded tells it from the next one', () => {
    const decoder = new FrameDecoder(MAX);
    const bytes = Buffer.concat([...encodeFrame({ type: 'CANCEL', id: 1 }), ...encodeFrame({ type: 'CANCEL', id: 2 })]);
    expect(decoder.inFrame).toBe(false);
    decoder.push(bytes.subarray(0, 3));
    expect(decoder.inFrame).toBe(true);
    expect(decoder.framesEnded).toBe(0);
    decoder.push(bytes.subarray(3, 13));
    expect(decoder.framesEnded).toBe(1);
    expect(decoder.inFrame).toBe(true); // the second one has begun
    decoder.push(bytes.subarray(13));
    expect(decoder.inFrame).toBe(false);
    expect(decoder.framesEnded).toBe(2);
  });

  it('a declared length of 4 GiB is refused at once and skipped without buffering', () => {
    const decoder = new FrameDecoder(MAX);
    const prefix = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const [first] = decoder.push(prefix);
    expect(first).toMatchObject({ kind: 'error', error: { code: 'ERR_VMLINK_RPC_FRAME_TOO_LARGE' } });
    for (let i = 0; i < 100; i++) expect(decoder.push(Buffer.alloc(64 * 1024))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('RpcPeer under a flood of random frames (real Unix sockets): bounded events', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  async function floodTarget(options: RpcPeerOptions = {}): Promise<{ raw: Socket; server: RpcPeer; events: RpcError[]; closed: Promise<Error | undefined> }> {
    const [raw, serverSide] = await socketPair();
    const server = new RpcPeer(serverSide, options);
    raw.on('error', () => undefined); // the server may close while we still write
    cleanups.push(() => {
      server.destroy();
      raw.destroy();
    });
    const events: RpcError[] = [];
    server.on('warning', (w) => events.push(w));
    server.on('limit', (l) => events.push(l));
    const closed = new Promise<Error | undefined>((resolve) => server.once('close', resolve));
    raw.resume(); // read (and drop) whatever the server answers
    return { raw, server, events, closed };
  }

  it('100,000 random frames (sound lengths, random contents): condemned after maxBadFrames, then silent', async () => {
    const rand = prng(0xf100d);
    const frames: Buffer[] = [];
    for (let i = 0; i < 100_000; i++) {
      const body = Buffer.from(Array.from({ length: 6 + Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)));
      body[0] = Math.floor(rand() * 12); // mostly known types, so some frames pass
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(body.length);
      frames.push(prefix, body);
    }
    const { raw, events, closed } = await floodTarget();
    raw.write(Buffer.concat(frames));
    expect(await closed).toMatchObject({ code: 'ERR_VMLINK_BAD_FRAMES' });
    // Before: one warning per bad frame (~100,000). Now: at most maxBadFrames warnings
    // (16; coalesced to 10 + a summary when they share a code) and one limit event.
    expect(events.length).toBeLessThanOrEqual(16 + 1);
    expect(events.filter((e) => e.code === 'ERR_VMLINK_BAD_FRAMES')).toHaveLength(1);
    expect(events.at(-1)?.code).toBe('ERR_VMLINK_BAD_FRAMES');
  }, 60_000);

  it('100,000 mutated frames (lengths included): never more than maxBadFrames warnings and one limit event', async () => {
    const rand = prng(0xbadf00d);
    const input = Buffer.concat(Array.from({ length: 100_000 }, () => mutate(Buffer.concat(encodeFrame(randomFrame(rand))), rand)));
    const { raw, server, events } = await floodTarget({ maxFrameSize: MAX });
    await new Promise<void>((resolve) => raw.write(input, () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    server.destroy();
    // A corrupted length can make the decoder skip the rest as one huge frame: then fewer
    // bad frames are seen. Either way the count is bounded, not one per frame.
    expect(events.length).toBeLessThanOrEqual(16 + 1);
  }, 60_000);

  it('100,000 valid random frames: every warning is counted, but coalesced to a few events per code per second', async () => {
    const rand = prng(0x600d);
    const parts: Buffer[] = [];
    let warnable = 0;
    for (let i = 0; i < 100_000; i++) {
      const frame = randomFrame(rand);
      let encoded: Buffer[];
      try {
        encoded = encodeFrame(frame);
      } catch {
        continue; // a CREDIT of 2^32 bytes: not encodable, not sent
      }
      parts.push(...encoded);
      // No handlers and no calls on the server: every NOTIFY (unknown method) and every
      // ERROR (about no call of its own) is a warning; nothing else is.
      if (frame.type === 'NOTIFY' || frame.type === 'ERROR') warnable += 1;
    }
    const fenceId = 0xfffffff0;
    parts.push(...encodeFrame({ type: 'REQUEST', id: fenceId, method: 'fence', params: undefined, stream: undefined }));
    const { raw, server, events } = await floodTarget({ handlers: { fence: () => true } });
    const started = performance.now();
    const fenced = new Promise<void>((resolve) => {
      const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_SIZE);
      raw.on('data', (chunk: Buffer) => {
        for (const item of decoder.push(chunk)) if (item.kind === 'frame' && item.frame.type === 'RESPONSE' && item.frame.id === fenceId) resolve();
      });
    });
    raw.write(Buffer.concat(parts));
    await fenced;
    await server.close(); // flushes the pending summaries
    const seconds = (performance.now() - started) / 1000;
    const counted = events.reduce((sum, e) => sum + ((e.data as { suppressed?: number } | undefined)?.suppressed ?? 1), 0);
    expect(counted).toBe(warnable);
    expect(warnable).toBeGreaterThan(20_000);
    // Two codes (unknown method, E_X): at most 10 + 1 summary each per second.
    expect(events.length).toBeLessThanOrEqual(2 * 11 * (Math.ceil(seconds) + 1));
  }, 60_000);
});
