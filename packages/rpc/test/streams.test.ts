import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcPeer, withBody, type RpcPeerOptions } from '@vmlink/rpc';
import { prng, socketPair } from './pair.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const WINDOW = 1 * MiB;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function peers(options: RpcPeerOptions = {}) {
  const sockets = await socketPair();
  const client = new RpcPeer(sockets[0], options);
  const server = new RpcPeer(sockets[1], options);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server, sockets };
}

/** `total` bytes in 64 KiB chunks made on demand (each a fresh buffer), and their md5. */
function generated(total: number): { source: AsyncGenerator<Buffer>; md5: () => string } {
  const hash = createHash('md5');
  async function* source(): AsyncGenerator<Buffer> {
    for (let offset = 0, n = 0; offset < total; offset += 64 * KiB, n++) {
      const chunk = Buffer.alloc(Math.min(64 * KiB, total - offset), n & 0xff);
      chunk.writeUInt32BE(n, 0); // no two chunks alike: a dropped or repeated one changes the hash
      hash.update(chunk);
      yield chunk;
    }
  }
  return { source: source(), md5: () => hash.digest('hex') };
}

/** Sample process memory while `work` runs; returns the peak growth of arrayBuffers. */
async function peakArrayBufferGrowth<T>(work: () => Promise<T>): Promise<{ value: T; growth: number }> {
  const base = process.memoryUsage().arrayBuffers;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 5);
  try {
    const value = await work();
    return { value, growth: peak - base };
  } finally {
    clearInterval(timer);
  }
}

describe('streamed bodies with credit flow control', () => {
  it('a 1 GiB request body crosses with bounded buffers on both sides', async () => {
    const { client, server, sockets } = await peers({ streamWindow: WINDOW });
    let maxBodyBuffered = 0;
    let maxSocketQueued = 0;
    server.handle('upload', async (_params, ctx) => {
      const hash = createHash('md5');
      let bytes = 0;
      for await (const chunk of ctx.body as Readable) {
        maxBodyBuffered = Math.max(maxBodyBuffered, (ctx.body as Readable).readableLength);
        maxSocketQueued = Math.max(maxSocketQueued, sockets[0].writableLength);
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      return { bytes, md5: hash.digest('hex') };
    });
    const total = 1024 * MiB;
    const { source, md5 } = generated(total);
    const { value, growth } = await peakArrayBufferGrowth(() => client.call('upload', null, { body: source }));
    expect(value).toEqual({ bytes: total, md5: md5() });
    // Counted bytes: the receiver never holds more than its window, the sender's socket
    // queue stays around one chunk plus the stream's high-water mark.
    expect(maxBodyBuffered).toBeLessThanOrEqual(WINDOW);
    expect(maxSocketQueued).toBeLessThanOrEqual(256 * KiB);
    // And the process as a whole: 1 GiB went through, far less was ever held.
    expect(growth).toBeLessThan(256 * MiB);
  }, 300_000);

  it('a 256 MiB response body from withBody() crosses byte-exact to a slow reader', async () => {
    const { client, server } = await peers({ streamWindow: WINDOW });
    const total = 256 * MiB;
    const { source, md5 } = generated(total);
    server.handle('download', () => withBody({ size: total }, Readable.from(source)));
    const { result, body } = await client.request('download');
    expect(result).toEqual({ size: total });
    const hash = createHash('md5');
    let maxBuffered = 0;
    let n = 0;
    for await (const chunk of body as Readable) {
      hash.update(chunk as Buffer);
      maxBuffered = Math.max(maxBuffered, (body as Readable).readableLength);
      if (++n % 512 === 0) await new Promise((resolve) => setTimeout(resolve, 1)); // a slow consumer
    }
    expect(hash.digest('hex')).toBe(md5());
    expect(maxBuffered).toBeLessThanOrEqual(WINDOW);
  }, 300_000);

  it('a Uint8Array body and an empty body arrive whole', async () => {
    const { client, server } = await peers({ streamWindow: 100 });
    server.handle('len', async (_p, ctx) => {
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.body as Readable) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('hex');
    });
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 0xff));
    expect(await client.call('len', null, { body: data })).toBe(data.toString('hex'));
    expect(await client.call('len', null, { body: [] })).toBe('');
  });

  it('a reader that stops early (destroy) stops the sender; the connection stays usable', async () => {
    const { client, server } = await peers({ streamWindow: 64 * KiB });
    let produced = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      for (;;) {
        produced += 16 * KiB;
        yield Buffer.alloc(16 * KiB, 7);
      }
    }
    let sourceFinished!: () => void;
    const finished = new Promise<void>((resolve) => (sourceFinished = resolve));
    server.handle('forever', () => withBody(null, Readable.from(endless()).once('close', () => sourceFinished())));
    server.handle('ping', () => 'pong');
    const { body } = await client.request('forever');
    let received = 0;
    for await (const chunk of body as Readable) {
      received += (chunk as Buffer).length;
      if (received >= 512 * KiB) break; // destroys the body: STOP goes to the sender
    }
    await finished;
    expect(produced).toBeLessThan(received + 2 * 64 * KiB + 64 * KiB);
    expect(await client.call('ping')).toBe('pong');
  });

  it("a failing body source ends the stream with an error the handler sees", async () => {
    const { client, server } = await peers();
    server.handle('consume', async (_p, ctx) => {
      for await (const _chunk of ctx.body as Readable) {
        // keep reading until the error arrives
      }
      return 'unreachable';
    });
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1000);
      throw new Error('disk on fire');
    }
    await expect(client.call('consume', null, { body: failing() })).rejects.toMatchObject({
      code: 'ERR_VMLINK_RPC_STREAM_ABORTED',
      message: 'body source failed: disk on fire',
      remote: true,
    });
  });

  it('a handler that ignores its request body releases it, and the call is still answered', async () => {
    const { client, server } = await peers({ streamWindow: 32 * KiB });
    server.handle('ignore', () => 'ignored');
    const { source } = generated(8 * MiB);
    expect(await client.call('ignore', null, { body: source })).toBe('ignored');
    server.handle('ping', () => 'pong');
    expect(await client.call('ping')).toBe('pong');
  });

  it('seeded windows and chunk sizes from 1 byte up never stall and never reorder', async () => {
    const rand = prng(7);
    for (let trial = 0; trial < 40; trial++) {
      const window = 1 + Math.floor(rand() * 4000);
      const chunkSize = 1 + Math.floor(rand() * 3000);
      const { client, server } = await peers({ streamWindow: window, chunkSize });
      server.handle('echo-body', async (_p, ctx) => {
        const parts: Buffer[] = [];
        for await (const chunk of ctx.body as Readable) parts.push(chunk as Buffer);
        return withBody(null, Buffer.concat(parts));
      });
      const data = Buffer.from(Array.from({ length: Math.floor(rand() * 20_000) }, () => Math.floor(rand() * 256)));
      const { body } = await client.request('echo-body', null, { body: data });
      const back: Buffer[] = [];
      for await (const chunk of body as Readable) back.push(chunk as Buffer);
      expect(Buffer.concat(back).equals(data), `trial ${trial}: window ${window}, chunk ${chunkSize}`).toBe(true);
    }
  }, 120_000);

  it('a response body the client stops reading ends its quiet source at once (return() is called)', async () => {
    const { client, server } = await peers();
    let returned = false;
    const quiet: AsyncIterator<Uint8Array> & AsyncIterable<Uint8Array> = {
      next: () => new Promise(() => undefined), // a producer with nothing to say, ever
      return: async () => {
        returned = true;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    server.handle('quiet', () => withBody({ ok: true }, quiet));
    const response = await client.request('quiet', {});
    response.body!.destroy(); // STOP
    for (let i = 0; i < 200 && !returned; i++) await new Promise((r) => setTimeout(r, 10));
    expect(returned).toBe(true);
  });
});
