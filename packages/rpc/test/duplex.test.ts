/**
 * withBody(..., { keepRequestBody: true }): one request carries both directions (a
 * forwarded TCP connection). The handler reads its request body on while its response
 * body streams; each direction keeps its own credit, and an abort or a close frees both.
 * Real Unix sockets between two peers.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcPeer, withBody, type RpcPeerOptions } from '@vmlink/rpc';
import { socketPair } from './pair.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const WINDOW = 256 * KiB;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function peers(options: RpcPeerOptions = { streamWindow: WINDOW }) {
  const sockets = await socketPair();
  const client = new RpcPeer(sockets[0], options);
  const server = new RpcPeer(sockets[1], options);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server, sockets };
}

/** A source of up to `total` bytes in 16 KiB chunks; counts what was pulled and whether it was closed. */
function counted(total: number) {
  const state = { pulled: 0, closed: false, md5: createHash('md5') };
  async function* source(): AsyncGenerator<Buffer> {
    try {
      for (let n = 0; state.pulled < total; n++) {
        const chunk = Buffer.alloc(Math.min(16 * KiB, total - state.pulled), n & 0xff);
        chunk.writeUInt32BE(n, 0);
        state.pulled += chunk.length;
        state.md5.update(chunk);
        yield chunk;
      }
    } finally {
      state.closed = true;
    }
  }
  return { source: source(), state };
}

/** Resolves once `check()` holds, looking once per turn of the event loop (liveness limit: the test timeout). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
}

/** 'close', whether or not an error came first (events.once would reject on the error). */
function closed(stream: Readable): Promise<void> {
  return new Promise((resolve) => (stream.destroyed ? resolve() : stream.once('close', () => resolve())));
}

/** Echo: the request body, as it arrives, is the response body. */
async function* echo(body: Readable): AsyncGenerator<Buffer> {
  for await (const chunk of body) yield chunk as Buffer;
}

describe('keepRequestBody: both directions in one request', () => {
  it('a handler echoes 32 MiB while it streams its response: byte-exact, both buffers within the window', async () => {
    const { client, server } = await peers();
    let maxBuffered = 0;
    server.handle('echo', (_params, ctx) => {
      const body = ctx.body as Readable;
      body.on('data', () => (maxBuffered = Math.max(maxBuffered, body.readableLength)));
      return withBody({ echoing: true }, echo(body), { keepRequestBody: true });
    });
    const { source, state } = counted(32 * MiB);
    const { result, body } = await client.request('echo', {}, { body: source });
    expect(result).toEqual({ echoing: true });
    const back = createHash('md5');
    let bytes = 0;
    for await (const chunk of body as Readable) {
      back.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      expect(client.memory.bodies).toBeLessThanOrEqual(WINDOW);
    }
    expect(bytes).toBe(32 * MiB);
    expect(back.digest('hex')).toBe(state.md5.digest('hex'));
    expect(maxBuffered).toBeLessThanOrEqual(WINDOW);
    await until(() => server.memory.bodies === 0 && client.memory.bodies === 0);
  }, 120_000);

  it('without the option the request body is still released when the handler returns', async () => {
    const { client, server } = await peers();
    let bodyClosed: Promise<unknown> | undefined;
    server.handle('echo', (_params, ctx) => {
      bodyClosed = closed(ctx.body as Readable);
      return withBody({}, echo(ctx.body as Readable));
    });
    const { source, state } = counted(64 * MiB);
    const { body } = await client.request('echo', {}, { body: source });
    // The echo ends early (its input was released): the caller sees the reason, and no crash.
    (body as Readable).resume();
    await bodyClosed;
    // The sender was told to stop: its source is closed long before 64 MiB.
    await until(() => state.closed);
    expect(state.pulled).toBeLessThan(8 * MiB);
    (body as Readable).destroy();
  });

  it('a caller that never reads the response: the handler stops reading too, and the caller sends at most about two windows', async () => {
    const { client, server } = await peers();
    let requestBody: Readable | undefined;
    server.handle('echo', (_params, ctx) => {
      requestBody = ctx.body as Readable;
      return withBody({}, echo(requestBody), { keepRequestBody: true });
    });
    const { source, state } = counted(256 * MiB);
    const { body } = await client.request('echo', {}, { body: source });
    // Stalled: the handler's request body holds a full window it cannot pass on.
    await until(() => server.memory.bodies >= WINDOW);
    const pulled = state.pulled;
    // Echoed and in flight: a response window, a request window, socket buffers, a chunk each.
    expect(pulled).toBeLessThan(4 * WINDOW + 2 * MiB);
    expect(server.memory.bodies).toBeLessThanOrEqual(WINDOW);
    expect(client.memory.bodies).toBeLessThanOrEqual(WINDOW);
    // Still stalled many turns of the loop later.
    for (let i = 0; i < 200; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(state.pulled).toBe(pulled);
    // The caller gives up on the response: both directions are freed on both sides.
    const requestClosed = closed(requestBody as Readable);
    (body as Readable).destroy();
    await requestClosed;
    await until(() => state.closed && server.memory.bodies === 0 && client.memory.bodies === 0);
  });

  it('a handler that never reads its kept body: the caller sends one window, the response still streams whole', async () => {
    const { client, server } = await peers();
    let requestBody: Readable | undefined;
    server.handle('ignore', (_params, ctx) => {
      requestBody = ctx.body as Readable;
      return withBody({}, Buffer.alloc(4 * MiB, 7), { keepRequestBody: true });
    });
    const { source, state } = counted(256 * MiB);
    const { body } = await client.request('ignore', {}, { body: source });
    let bytes = 0;
    for await (const chunk of body as Readable) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(4 * MiB);
    await until(() => server.memory.bodies >= WINDOW);
    for (let i = 0; i < 200; i++) await new Promise((resolve) => setImmediate(resolve));
    // The response ended normally: the request body stays open (a half-close), bounded by its window.
    expect((requestBody as Readable).destroyed).toBe(false);
    expect(server.memory.bodies).toBe(WINDOW);
    expect(state.pulled).toBeLessThan(WINDOW + 2 * MiB);
    // Closing the connection frees it.
    const requestClosed = closed(requestBody as Readable);
    client.destroy();
    await requestClosed;
    await until(() => state.closed);
  });

  it('after the response ended, the caller still sends: the handler reads it to the end (half-close)', async () => {
    const { client, server } = await peers();
    let got: Promise<string> | undefined;
    let received = -1;
    server.handle('talk', (_params, ctx) => {
      const body = ctx.body as Readable;
      // 'received' comes when the caller's END arrives, before the last bytes are read.
      body.once('received', () => (received = body.readableLength));
      got = (async () => {
        const parts: Buffer[] = [];
        for await (const chunk of body) parts.push(chunk as Buffer);
        return Buffer.concat(parts).toString();
      })();
      return withBody({}, Buffer.from('hello'), { keepRequestBody: true });
    });
    let sendRest!: () => void;
    const later = new Promise<void>((resolve) => (sendRest = resolve));
    async function* talk(): AsyncGenerator<Buffer> {
      yield Buffer.from('first ');
      await later;
      yield Buffer.from('and after the reply');
    }
    const { body } = await client.request('talk', {}, { body: talk() });
    let reply = '';
    for await (const chunk of body as Readable) reply += (chunk as Buffer).toString();
    expect(reply).toBe('hello');
    sendRest();
    expect(await got).toBe('first and after the reply');
    expect(received).toBeGreaterThanOrEqual(0);
  });

  it("a failing response source ends the exchange: the kept body is released and the caller's source stopped", async () => {
    const { client, server } = await peers();
    let requestBody: Readable | undefined;
    let fail!: () => void;
    const failing = new Promise<void>((resolve) => (fail = resolve));
    server.handle('broken', (_params, ctx) => {
      requestBody = ctx.body as Readable;
      async function* response(): AsyncGenerator<Buffer> {
        yield Buffer.from('part');
        await failing;
        throw Object.assign(new Error('disk on fire'), { code: 'EIO' });
      }
      return withBody({}, response(), { keepRequestBody: true });
    });
    const { source, state } = counted(256 * MiB);
    const { body } = await client.request('broken', {}, { body: source });
    const errored = once(body as Readable, 'error');
    (body as Readable).resume();
    await until(() => server.memory.bodies >= WINDOW);
    const requestClosed = closed(requestBody as Readable);
    fail();
    const [error] = (await errored) as [Error & { code?: string }];
    expect(error.message).toMatch(/disk on fire/);
    await requestClosed;
    await until(() => state.closed && server.memory.bodies === 0);
  });

  it('keepRequestBody must be a boolean', () => {
    expect(() => withBody({}, Buffer.alloc(1), { keepRequestBody: 'yes' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/keepRequestBody/) }),
    );
  });
});
