import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcError, RpcMemoryBudget, RpcPeer, createMemoryBudget, encodeFrame, type BudgetMember, type RpcPeerOptions } from '@vmlink/rpc';
import { socketPair } from './pair.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function peers(serverOptions: RpcPeerOptions = {}, clientOptions: RpcPeerOptions = {}): Promise<{ client: RpcPeer; server: RpcPeer; sockets: [Socket, Socket] }> {
  const sockets = await socketPair();
  const client = new RpcPeer(sockets[0], clientOptions);
  const server = new RpcPeer(sockets[1], serverOptions);
  sockets[0].on('error', () => undefined);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server, sockets };
}

/** Resolves with the 'limit' events and the 'close' error once `peer` has closed. */
function closing(peer: RpcPeer): Promise<{ limits: RpcError[]; error: Error | undefined }> {
  const limits: RpcError[] = [];
  peer.on('limit', (error) => limits.push(error));
  return new Promise((resolve) => peer.once('close', (error) => resolve({ limits, error })));
}

describe('idleTimeout', () => {
  it('closes a connection with nothing in flight and no frame for idleTimeout ms, with ERR_VMLINK_IDLE_TIMEOUT', async () => {
    const { client, server } = await peers({ idleTimeout: 200, handlers: { ping: () => 'pong' } });
    const closed = closing(server);
    const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect(await client.call('ping')).toBe('pong');
    const { limits, error } = await closed;
    expect(error).toMatchObject({ code: 'ERR_VMLINK_IDLE_TIMEOUT' });
    expect((error as Error).message).toMatch(/idleTimeout 200 ms/);
    expect(limits.map((l) => l.code)).toEqual(['ERR_VMLINK_IDLE_TIMEOUT']);
    await clientClosed; // the other side sees the connection end too
  });

  it('does not close while a request is in flight, however long it runs', async () => {
    const { client, server } = await peers({ idleTimeout: 100 });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server.handle('slow', async () => {
      await released;
      return 'done';
    });
    const limits: RpcError[] = [];
    server.on('limit', (error) => limits.push(error));
    const calling = client.call('slow');
    // Five idle periods pass with the call running (timers, not a timed assertion).
    await new Promise((resolve) => setTimeout(resolve, 500));
    release();
    expect(await calling).toBe('done');
    expect(limits).toEqual([]);
    expect(server.closed).toBe(false);
  });

  it('a client whose own call is pending is not idle either', async () => {
    const { client, server } = await peers({}, { idleTimeout: 100 });
    server.handle('later', () => new Promise((resolve) => setTimeout(() => resolve('ok'), 400)));
    expect(await client.call('later')).toBe('ok');
    expect(client.closed).toBe(false);
  });

  it('rejects a bad value with a coded error naming it', async () => {
    const [a] = await socketPair();
    cleanups.push(() => a.destroy());
    expect(() => new RpcPeer(a, { idleTimeout: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.idleTimeout') }));
    expect(() => new RpcPeer(a, { frameTimeout: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.frameTimeout') }));
    expect(() => new RpcPeer(a, { budget: {} as RpcMemoryBudget })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.budget') }));
    expect(() => new RpcPeer(a, { maxWriteBuffer: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});

describe('frameTimeout', () => {
  it('cuts off a slowloris sender (one byte at a time, the frame never completes) with ERR_VMLINK_FRAME_TIMEOUT', async () => {
    const { server, sockets } = await peers({ frameTimeout: 300, handlers: { ping: () => 'pong' } });
    const raw = sockets[0];
    const closed = closing(server);
    const [frame] = encodeFrame({ type: 'REQUEST', id: 1, method: 'ping', params: { pad: 'z'.repeat(80) }, stream: undefined }) as [Buffer];
    let sent = 0;
    // One byte per 50 ms: the frame would take ~5 s to complete.
    const drip = setInterval(() => {
      if (raw.destroyed || sent >= frame.length - 1) return;
      raw.write(frame.subarray(sent, sent + 1));
      sent += 1;
    }, 50);
    cleanups.push(() => clearInterval(drip));
    const { limits, error } = await closed;
    clearInterval(drip);
    expect(error).toMatchObject({ code: 'ERR_VMLINK_FRAME_TIMEOUT' });
    expect(limits.map((l) => l.code)).toEqual(['ERR_VMLINK_FRAME_TIMEOUT']);
    expect(sent).toBeLessThan(frame.length - 1); // cut off before it could complete
  });

  it('whole frames arriving apart from each other are never cut off', async () => {
    const { client, server } = await peers({ frameTimeout: 100, handlers: { echo: (p) => p } });
    for (let i = 0; i < 5; i++) {
      expect(await client.call('echo', i)).toBe(i);
      await new Promise((resolve) => setTimeout(resolve, 150)); // longer than frameTimeout between frames
    }
    expect(server.closed).toBe(false);
  });

  it('a large frame split over many reads completes within the timeout', async () => {
    const { client, server } = await peers({ frameTimeout: 5_000, handlers: { size: (p) => (p as string).length } });
    expect(await client.call('size', 'q'.repeat(3 * 1024 * 1024))).toBe(3 * 1024 * 1024);
    expect(server.closed).toBe(false);
  });
});

describe('maxBadFrames: a condemned connection is closed and reported once', () => {
  it('the frame after maxBadFrames malformed ones condemns the connection: one limit event, no more warnings', async () => {
    const { server, sockets } = await peers({ maxBadFrames: 3 });
    const warnings: RpcError[] = [];
    server.on('warning', (w) => warnings.push(w));
    const closed = closing(server);
    const junk = Buffer.from([0, 0, 0, 6, 77, 0, 0, 0, 0, 1]); // unknown frame type
    sockets[0].write(Buffer.concat(Array(1000).fill(junk)));
    const { limits, error } = await closed;
    expect(error).toMatchObject({ code: 'ERR_VMLINK_BAD_FRAMES', data: { badFrames: 4 } });
    expect(limits.map((l) => l.code)).toEqual(['ERR_VMLINK_BAD_FRAMES']);
    expect(warnings).toHaveLength(3);
  });
});

describe('shared memory budget', () => {
  it('RpcMemoryBudget (pure logic, fake members): fair share, exhaustion, release', async () => {
    const budget = createMemoryBudget(1000);
    const rechecked: string[] = [];
    const member = (name: string): BudgetMember => ({ budgetChanged: () => rechecked.push(name) });
    const a = member('a');
    const b = member('b');
    budget.join(a);
    budget.join(b);
    expect(budget.fairShare).toBe(500);
    expect(budget.charge(a, 400, 0)).toBe(false);
    expect(budget.charge(a, 501, 0)).toBe(true); // over its share
    expect(budget.charge(b, 0, 600)).toBe(false); // a frame being received never pauses its own peer
    expect(budget.used).toBe(1101);
    expect(budget.charge(b, 1, 600)).toBe(true); // the budget is spent: anything releasable pauses
    budget.leave(b);
    expect(budget.used).toBe(501);
    expect(budget.fairShare).toBe(1000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(rechecked).toEqual(['a']); // blocked members look again once released bytes allow
    expect(budget.charge(a, 501, 0)).toBe(false);
    expect(() => createMemoryBudget(0)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });

  it('4 connections uploading into handlers that do not read yet: together they hold about the budget, not 4 windows; all finish once read', async () => {
    const budget = createMemoryBudget(2 * 1024 * 1024);
    const window = 1024 * 1024;
    const size = 8 * 1024 * 1024;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const servers: RpcPeer[] = [];
    const clients: RpcPeer[] = [];
    const limits: RpcError[] = [];
    for (let i = 0; i < 4; i++) {
      const { client, server } = await peers({
        budget,
        streamWindow: window,
        handlers: {
          upload: async (_p, { body }) => {
            await released;
            let bytes = 0;
            for await (const chunk of body as AsyncIterable<Buffer>) bytes += chunk.length;
            return bytes;
          },
        },
      });
      server.on('limit', (error) => limits.push(error));
      servers.push(server);
      clients.push(client);
    }
    expect(budget.members).toBe(4);
    const uploads = clients.map((client) => client.call('upload', null, { body: Buffer.alloc(size, 7) }));
    // Wait until every server stopped reading (the budget bit on each), with a liveness deadline.
    const deadline = Date.now() + 30_000;
    while (!servers.every((s) => s.readingPaused) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(servers.every((s) => s.readingPaused)).toBe(true);
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 10)); // it holds
    const held = servers.reduce((sum, s) => sum + s.memory.total, 0);
    // Without the budget: 4 x 1 MiB windows. With it: the budget, plus per peer at most one read chunk.
    expect(held).toBeLessThanOrEqual(budget.limit + 4 * 256 * 1024);
    expect(budget.used).toBe(held);
    expect(new Set(limits.map((l) => l.code))).toEqual(new Set(['ERR_VMLINK_MEMORY_BUDGET']));
    release();
    expect(await Promise.all(uploads)).toEqual([size, size, size, size]);
    for (const server of servers) server.destroy();
    expect(budget.members).toBe(0);
    expect(budget.used).toBe(0);
  }, 60_000);
});

describe('shared memory budget: requests waiting for a handler slot', () => {
  it('pipelined requests queued behind a busy handler are charged: the peer stops reading at its share, then serves them all', async () => {
    // Concurrency already stops reading after the chunk in hand (<= 64 KiB of requests
    // queue up); a budget below that shows the queued requests are charged too.
    const budget = createMemoryBudget(16 * 1024);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const { client, server } = await peers({
      budget,
      maxConcurrentRequests: 1,
      handlers: {
        work: async (p) => {
          await released;
          return (p as string).length;
        },
      },
    });
    const limits: RpcError[] = [];
    server.on('limit', (error) => limits.push(error));
    const params = 'w'.repeat(1024);
    const calls = Array.from({ length: 5_000 }, () => client.call('work', params)); // ~5 MB of requests
    const deadline = Date.now() + 30_000;
    while (limits.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(limits.map((l) => l.code)).toEqual(['ERR_VMLINK_MEMORY_BUDGET']);
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 10)); // it holds
    expect(server.memory.queued).toBeGreaterThan(0);
    expect(server.memory.total).toBeLessThanOrEqual(budget.limit + 256 * 1024); // + about one read chunk
    release();
    expect((await Promise.all(calls)).every((n) => n === 1024)).toBe(true);
  }, 60_000);
});

describe('log flooding', () => {
  it('repeated warnings of one code are coalesced: 10 per second, then one summary with the count', async () => {
    const { client, server } = await peers();
    const warnings: RpcError[] = [];
    server.on('warning', (w) => warnings.push(w));
    for (let i = 0; i < 5_000; i++) client.notify('nobody.listens', i);
    await client.call('nobody.listens').catch(() => undefined); // everything before it was read
    await server.close();
    const total = warnings.reduce((sum, w) => sum + ((w.data as { suppressed?: number } | undefined)?.suppressed ?? 1), 0);
    expect(total).toBe(5_000);
    expect(warnings.length).toBeLessThanOrEqual(12);
    expect(warnings.at(-1)).toMatchObject({ code: 'ERR_VMLINK_RPC_UNKNOWN_METHOD', message: expect.stringMatching(/^\d+ more warnings with this code/) });
  });
});
