import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameDecoder, RpcPeer, encodeFrame, type Frame, type RpcError, type RpcPeerOptions } from '@vmlink/rpc';
import { socketPair } from './pair.js';

// A real gc() for RSS measurements (vitest workers do not run with --expose-gc).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function settledRss(): number {
  gc();
  gc();
  return process.memoryUsage().rss;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A server RpcPeer on one end of a real Unix socket pair; the test drives the other end by hand. */
async function rawClientAndServer(options: RpcPeerOptions): Promise<{ raw: Socket; server: RpcPeer }> {
  const [raw, serverSide] = await socketPair();
  const server = new RpcPeer(serverSide, options);
  cleanups.push(() => {
    server.destroy();
    raw.destroy();
  });
  raw.on('error', () => undefined);
  return { raw, server };
}

function nextEvent<T>(emitter: { once(event: string, listener: (value: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

/** Requests as one buffer, written in one go: the client pipelines everything and reads nothing. */
function requests(count: number, method: string, params: unknown): Buffer {
  const parts: Buffer[] = [];
  for (let id = 1; id <= count; id++) parts.push(...encodeFrame({ type: 'REQUEST', id, method, params, stream: undefined }));
  return Buffer.concat(parts);
}

/** Reads every frame the server sent until `count` replies arrived; checks their ids are 1..count in order. */
function collectReplies(raw: Socket, count: number, accept: (frame: Frame) => number | null): Promise<void> {
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  let expected = 1;
  return new Promise((resolve, reject) => {
    raw.on('data', (chunk: Buffer) => {
      for (const item of decoder.push(chunk)) {
        if (item.kind !== 'frame') return reject(new Error(`bad frame from the server: ${item.error.message}`));
        const id = accept(item.frame);
        if (id === null) continue;
        if (id !== expected) return reject(new Error(`reply ${id} arrived where ${expected} was due`));
        expected += 1;
        if (expected > count) resolve();
      }
    });
    raw.once('close', () => reject(new Error(`connection closed after ${expected - 1} of ${count} replies`)));
    raw.resume();
  });
}

const CAP = 256 * 1024;

describe('RpcPeer backpressure on replies the remote does not read (real Unix sockets)', () => {
  it('1,000,000 pipelined pings (18 MB) never read: the server stops reading at maxWriteBuffer, memory stays bounded, then every reply arrives in order', async () => {
    const { raw, server } = await rawClientAndServer({ maxWriteBuffer: CAP, handlers: { ping: () => 'pong' } });
    const limits: RpcError[] = [];
    server.on('limit', (error) => limits.push(error));
    raw.pause(); // the attacker reads nothing
    const input = requests(1_000_000, 'ping', {});
    const before = settledRss(); // after building the input: only what the server keeps counts
    const limited = nextEvent<RpcError>(server, 'limit');
    raw.write(input);
    expect((await limited).code).toBe('ERR_VMLINK_WRITE_BACKLOG');
    expect(server.readingPaused).toBe(true);
    // Give the server every chance to go on (it must not): a few turns of the loop and I/O.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    const memory = server.memory;
    // The peer's own accounting: the reply that crossed the cap is the only overshoot.
    expect(server.peakWriteBufferedBytes).toBeLessThanOrEqual(CAP + 1024);
    expect(memory.writeQueued).toBeLessThanOrEqual(CAP + 1024);
    expect(memory.held).toBeLessThanOrEqual(256 * 1024); // what one read had brought in
    // Without the cap the server queued every reply: ~130 MB more RSS (measured).
    const grown = settledRss() - before;
    expect(grown).toBeLessThan(64 * 1024 * 1024);
    expect(limits.map((l) => l.code)).toEqual(['ERR_VMLINK_WRITE_BACKLOG']);

    await collectReplies(raw, 1_000_000, (frame) => {
      if (frame.type !== 'RESPONSE' || frame.result !== 'pong') throw new Error(`unexpected ${frame.type}`);
      return frame.id;
    });
    expect(limits).toHaveLength(1); // reported once, however often it bit
  }, 180_000);

  it('error replies count too: 200,000 calls of an unknown method, never read', async () => {
    const { raw, server } = await rawClientAndServer({ maxWriteBuffer: CAP });
    raw.pause();
    const limited = nextEvent<RpcError>(server, 'limit');
    raw.write(requests(200_000, 'no.such.method', undefined));
    expect((await limited).code).toBe('ERR_VMLINK_WRITE_BACKLOG');
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(server.peakWriteBufferedBytes).toBeLessThanOrEqual(CAP + 1024);
    await collectReplies(raw, 200_000, (frame) => {
      if (frame.type !== 'ERROR') throw new Error(`unexpected ${frame.type}`);
      expect(frame.error.code).toBe('ERR_VMLINK_RPC_UNKNOWN_METHOD');
      return frame.id;
    });
  }, 120_000);

  it('malformed-frame replies count too (with a tolerant maxBadFrames)', async () => {
    const { raw, server } = await rawClientAndServer({ maxWriteBuffer: CAP, maxBadFrames: 1_000_000 });
    raw.pause();
    const limited = nextEvent<RpcError>(server, 'limit');
    // A REQUEST whose params are not JSON: answered with an ERROR carrying its id.
    const frames: Buffer[] = [];
    for (let id = 1; id <= 100_000; id++) {
      const [head] = encodeFrame({ type: 'REQUEST', id, method: 'm', params: undefined, stream: undefined }) as [Buffer];
      const bad = Buffer.concat([head, Buffer.from('{')]);
      bad.writeUInt32BE(bad.length - 4, 0);
      frames.push(bad);
    }
    raw.write(Buffer.concat(frames));
    expect((await limited).code).toBe('ERR_VMLINK_WRITE_BACKLOG');
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(server.peakWriteBufferedBytes).toBeLessThanOrEqual(CAP + 1024);
    await collectReplies(raw, 100_000, (frame) => {
      if (frame.type !== 'ERROR') throw new Error(`unexpected ${frame.type}`);
      expect(frame.error.code).toBe('ERR_VMLINK_RPC_MALFORMED_FRAME');
      return frame.id;
    });
  }, 120_000);

  it('large replies from async handlers: the overshoot is bounded by the handlers already running', async () => {
    const reply = 'x'.repeat(64 * 1024);
    const concurrency = 8;
    const { raw, server } = await rawClientAndServer({
      maxWriteBuffer: CAP,
      maxConcurrentRequests: concurrency,
      handlers: { 'fs.list': async () => reply },
    });
    raw.pause();
    const limited = nextEvent<RpcError>(server, 'limit');
    raw.write(requests(2_000, 'fs.list', { path: '/' })); // 128 MiB of replies if nothing held back
    expect((await limited).code).toBe('ERR_VMLINK_WRITE_BACKLOG');
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(server.peakWriteBufferedBytes).toBeLessThanOrEqual(CAP + (concurrency + 1) * (reply.length + 64));
    await collectReplies(raw, 2_000, (frame) => {
      if (frame.type !== 'RESPONSE') throw new Error(`unexpected ${frame.type}`);
      return frame.id;
    });
  }, 120_000);

  it('a small maxWriteBuffer does not disturb an RpcPeer client that reads normally', async () => {
    const sockets = await socketPair();
    const client = new RpcPeer(sockets[0]);
    const server = new RpcPeer(sockets[1], { maxWriteBuffer: CAP, handlers: { echo: (p) => p } });
    cleanups.push(() => {
      client.destroy();
      server.destroy();
    });
    const results = await Promise.all(Array.from({ length: 5_000 }, (_, i) => client.call('echo', 'y'.repeat(100) + i)));
    expect(results).toEqual(Array.from({ length: 5_000 }, (_, i) => 'y'.repeat(100) + i));
  });
});

describe('callers waiting for drain', () => {
  it('100 calls waiting for the connection to drain share one listener: no MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));
    const sockets = await socketPair();
    sockets[1].pause(); // the server reads nothing yet
    const client = new RpcPeer(sockets[0]);
    cleanups.push(() => client.destroy());
    const big = 'p'.repeat(16 * 1024);
    const calls = Array.from({ length: 100 }, (_, i) => client.call('echo', `${i}${big}`));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sockets[0].listenerCount('drain')).toBeLessThanOrEqual(2);
    const server = new RpcPeer(sockets[1], { handlers: { echo: (p) => (p as string).length } });
    cleanups.push(() => server.destroy());
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 100 }, (_, i) => `${i}${big}`.length));
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([]);
  });
});
