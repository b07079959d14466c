import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcError, RpcPeer, encodeFrame, type RpcPeerOptions } from '@vmlink/rpc';
import { socketPair } from './pair.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function peers(serverOptions: RpcPeerOptions = {}, clientOptions: RpcPeerOptions = {}): Promise<{ client: RpcPeer; server: RpcPeer; sockets: [Socket, Socket] }> {
  const sockets = await socketPair();
  const client = new RpcPeer(sockets[0], clientOptions);
  const server = new RpcPeer(sockets[1], serverOptions);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server, sockets };
}

describe('RpcPeer calls', () => {
  it('calls a handler by name with params and gets its result', async () => {
    const { client, server } = await peers();
    server.handle('add', (params) => {
      const { a, b } = params as { a: number; b: number };
      return a + b;
    });
    server.handle('echo', async (params) => params);
    expect(await client.call('add', { a: 2, b: 40 })).toBe(42);
    expect(await client.call('echo', { nested: [1, 'two', null] })).toEqual({ nested: [1, 'two', null] });
    expect(await client.call('echo')).toBeUndefined();
  });

  it('both ends can call each other on one connection', async () => {
    const { client, server } = await peers();
    server.handle('whoami', () => 'server');
    client.handle('whoami', () => 'client');
    server.handle('ask-back', (_params, ctx) => ctx.peer.call('whoami'));
    expect(await client.call('ask-back')).toBe('client');
    expect(await server.call('whoami')).toBe('client');
  });

  it('many concurrent calls each get their own answer', async () => {
    const { client, server } = await peers();
    server.handle('double', async (n) => {
      await new Promise((resolve) => setImmediate(resolve));
      return (n as number) * 2;
    });
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => client.call('double', i)));
    expect(results).toEqual(Array.from({ length: 500 }, (_, i) => i * 2));
  });

  it('handler errors cross with code, message and data, marked remote', async () => {
    const { client, server } = await peers();
    server.handle('fail', () => {
      throw new RpcError('E_APP_NOPE', 'not today', { data: { retryIn: 5 } });
    });
    server.handle('fail-plain', async () => {
      throw new TypeError('plain failure');
    });
    server.handle('fail-errno', () => {
      throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    });
    await expect(client.call('fail')).rejects.toMatchObject({ code: 'E_APP_NOPE', message: 'not today', data: { retryIn: 5 }, remote: true });
    await expect(client.call('fail-plain')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_HANDLER_FAILED', message: 'plain failure' });
    await expect(client.call('fail-errno')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('an unknown method gets ERR_VMLINK_RPC_UNKNOWN_METHOD and the peer carries on', async () => {
    const { client, server } = await peers();
    server.handle('ping', () => 'pong');
    await expect(client.call('nope')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_UNKNOWN_METHOD', message: "unknown method 'nope'" });
    expect(await client.call('ping')).toBe('pong');
  });

  it('a result JSON cannot carry becomes an error reply, not a crash', async () => {
    const { client, server } = await peers();
    server.handle('bigint', () => 1n);
    await expect(client.call('bigint')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_HANDLER_FAILED' });
    await expect(client.call('bigint', 2n)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('notifications reach their handler; unknown ones are reported as warnings only', async () => {
    const { client, server } = await peers();
    const got = new Promise((resolve) => server.handle('tick', (params) => resolve(params)));
    const warned = new Promise((resolve) => server.once('warning', resolve));
    client.notify('tick', { n: 1 });
    expect(await got).toEqual({ n: 1 });
    client.notify('unheard-of');
    expect(await warned).toMatchObject({ code: 'ERR_VMLINK_RPC_UNKNOWN_METHOD' });
  });
});

describe('RpcPeer timeouts, aborts and closing', () => {
  it('a timeout fails the call and cancels the handler through its signal', async () => {
    const { client, server } = await peers();
    const cancelled = new Promise<unknown>((resolve) => {
      server.handle('slow', (_p, ctx) => new Promise(() => ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason))));
    });
    await expect(client.call('slow', null, { timeout: 50 })).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_TIMEOUT', message: "call 'slow' timed out after 50 ms" });
    expect(await cancelled).toMatchObject({ code: 'ERR_VMLINK_RPC_CANCELLED' });
    expect(client.pendingCalls).toBe(0);
  });

  it('defaultTimeout applies to calls without their own', async () => {
    const { client, server } = await peers({}, { defaultTimeout: 30 });
    server.handle('never', () => new Promise(() => {}));
    await expect(client.call('never')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_TIMEOUT' });
  });

  it('AbortSignal: pre-aborted and mid-call aborts reject with AbortError and cancel the handler', async () => {
    const { client, server } = await peers();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const cancelled = new Promise<void>((resolve) => {
      server.handle('wait', (_p, ctx) => {
        started();
        return new Promise(() => ctx.signal.addEventListener('abort', () => resolve()));
      });
    });
    await expect(client.call('wait', null, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    const controller = new AbortController();
    const calling = client.call('wait', null, { signal: controller.signal });
    await running;
    controller.abort();
    await expect(calling).rejects.toMatchObject({ name: 'AbortError' });
    await cancelled;
  });

  it('the connection closing fails pending calls with ERR_VMLINK_RPC_CLOSED', async () => {
    const { client, server, sockets } = await peers();
    server.handle('hang', () => new Promise(() => {}));
    const calling = client.call('hang');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const closed = new Promise((resolve) => client.once('close', resolve));
    sockets[1].destroy();
    await expect(calling).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_CLOSED' });
    await closed;
    expect(client.closed).toBe(true);
    await expect(client.call('hang')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_CLOSED' });
    expect(() => client.notify('x')).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_RPC_CLOSED' }));
  });

  it('close() ends the conversation on both sides', async () => {
    const { client, server } = await peers();
    const serverClosed = new Promise((resolve) => server.once('close', resolve));
    await client.close();
    await serverClosed;
    expect(server.closed).toBe(true);
  });

  it('bad arguments fail with typed errors', async () => {
    const { client } = await peers();
    await expect(client.call('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(client.call('x', null, { timeout: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(client.call('x', null, { signal: 'no' as unknown as AbortSignal })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(() => client.handle('x', 'not a function' as unknown as () => void)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    const [a] = await socketPair();
    cleanups.push(() => a.destroy());
    expect(() => new RpcPeer(a, { maxFrameSize: 10 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});

describe('RpcPeer with bad input on the wire', () => {
  it('malformed frames get an error reply (id when readable) and the peer keeps serving', async () => {
    const { client, server, sockets } = await peers();
    server.handle('ping', () => 'pong');
    const warnings: RpcError[] = [];
    client.on('warning', (w) => warnings.push(w));
    const raw = sockets[0];
    // Hand-made frames: u32 length, u8 type, u8 flags, u32 id, then the type's fields.
    const frame = (type: number, flags: number, id: number, rest: Buffer): Buffer => {
      const head = Buffer.alloc(10);
      head.writeUInt32BE(6 + rest.length, 0);
      head.writeUInt8(type, 4);
      head.writeUInt8(flags, 5);
      head.writeUInt32BE(id, 6);
      return Buffer.concat([head, rest]);
    };
    const method = (name: string): Buffer => {
      const bytes = Buffer.from(name);
      return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
    };
    raw.write(frame(1, 0, 999999, method(''))); // a request with an empty method: answered by id
    raw.write(frame(77, 0, 1, Buffer.alloc(0))); // unknown type
    raw.write(frame(1, 0, 2, Buffer.concat([method('ping'), Buffer.from('not json')])));
    raw.write(frame(1, 0x80, 3, method('ping'))); // a flag no frame has
    raw.write(Buffer.from([0, 0, 0, 2, 1, 0])); // shorter than any frame
    expect(await client.call('ping')).toBe('pong');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(warnings.map((w) => w.code)).toEqual(Array(5).fill('ERR_VMLINK_RPC_MALFORMED_FRAME'));
    expect(warnings.map((w) => w.remote)).toEqual(Array(5).fill(true));
  });

  it('a frame over maxFrameSize is refused before allocation, skipped, and the next call works', async () => {
    const { client, server, sockets } = await peers({ maxFrameSize: 4096 });
    server.handle('ping', () => 'pong');
    const warned = new Promise<RpcError>((resolve) => client.once('warning', resolve));
    const big = encodeFrame({ type: 'REQUEST', id: 5, method: 'ping', params: 'x'.repeat(10_000), stream: undefined });
    for (const part of big) sockets[0].write(part);
    expect(await warned).toMatchObject({ code: 'ERR_VMLINK_RPC_FRAME_TOO_LARGE' });
    expect(server.decoderBufferedBytes).toBeLessThanOrEqual(4096);
    expect(await client.call('ping')).toBe('pong');
  });
});

describe('RpcPeer backpressure', () => {
  it('never runs more than maxConcurrentRequests handlers; the rest wait their turn', async () => {
    const { client, server } = await peers({ maxConcurrentRequests: 4 });
    let running = 0;
    let maxRunning = 0;
    server.handle('work', async () => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((resolve) => setTimeout(resolve, 2));
      running -= 1;
      return 'done';
    });
    const results = await Promise.all(Array.from({ length: 200 }, () => client.call('work')));
    expect(results.every((r) => r === 'done')).toBe(true);
    expect(maxRunning).toBe(4);
  });

  it('takes over the flow of a connection the caller paused before handing it over', async () => {
    const sockets = await socketPair();
    sockets[1].pause(); // explicitly paused: adding a 'data' listener alone would not resume it
    expect(sockets[1].readableFlowing).toBe(false);
    const client = new RpcPeer(sockets[0]);
    const server = new RpcPeer(sockets[1], { handlers: { ping: () => 'pong' } });
    cleanups.push(() => {
      client.destroy();
      server.destroy();
    });
    expect(sockets[1].readableFlowing).toBe(true);
    expect(await client.call('ping', undefined, { timeout: 10_000 })).toBe('pong');
  });
});
