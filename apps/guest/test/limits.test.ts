/**
 * One client must not hurt the others (issue 14, item 6), against a real agent process
 * over real Unix sockets: the connection cap with its per-peer share and idle eviction,
 * 300 idle connections under `ulimit -n 256`, accept errors (EMFILE) logged with the
 * listener recovering, idle and frame-completion timeouts, the memory budget, unread
 * replies. The same transport-level limits run over vsock and virtio-serial in
 * limits.vm.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeFrame, type RpcPeer } from '@vmlink/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionSlots } from '../src/limits/connection-slots.js';
import { capForOpenFileLimit, readOpenFileLimit } from '../src/limits/fd-limit.js';
import { MemoryBudget } from '../src/limits/memory-budget.js';
import { callOnce, closeReason, eventually, openSocket, readExecRecords, rpcClient, rssKiB, startAgent } from './helpers.js';

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

describe('limits', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-limits-'));
    await writeFile(path.join(work, 'big.bin'), randomBytes(64 * 1024 * 1024));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('connection cap: an idle connection is closed to admit a newcomer; with every slot busy the newcomer is refused with a code', async () => {
    // 4 slots, 3 for one peer (a quarter kept for others).
    const agent = await startAgent(path.join(work, 'cap.sock'), ['--max-connections', '4', '--allow-exec', 'sh']);
    try {
      const idle = await rpcClient(agent.socketPath);
      const idleReason = closeReason(idle);
      expect(await idle.call('ping')).toMatchObject({ pong: true });
      const busy: RpcPeer[] = [];
      for (let i = 0; i < 2; i += 1) {
        const peer = await rpcClient(agent.socketPath);
        const { body } = await peer.request('exec', { command: 'sh', args: ['-c', 'sleep 1000'] });
        body?.on('error', () => undefined).resume();
        busy.push(peer);
      }
      // Our uid holds its 3: the idle one makes room.
      const newcomer = await rpcClient(agent.socketPath);
      expect(await newcomer.call('ping')).toMatchObject({ pong: true });
      expect(await idleReason).toBe('ERR_VMLINK_TOO_MANY_CONNECTIONS');
      const { body } = await newcomer.request('exec', { command: 'sh', args: ['-c', 'sleep 1000'] });
      body?.on('error', () => undefined).resume();
      busy.push(newcomer);
      // All 3 of this peer's slots are busy now: refused, with the reason.
      const refused = await rpcClient(agent.socketPath);
      const refusedReason = closeReason(refused);
      await expect(refused.call('ping')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_CLOSED' });
      expect(await refusedReason).toBe('ERR_VMLINK_TOO_MANY_CONNECTIONS');
      expect(agent.log()).toMatch(/"msg":"connection limit reached"/);
      for (const peer of busy) peer.destroy();
      // Slots come back once the busy ones are gone.
      await agent.waitForLog(/"msg":"disconnected"/);
      expect(await callOnce(agent.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it('300 idle connections under ulimit -n 256 do not lock anyone out', async () => {
    const agent = await startAgent(path.join(work, 'many.sock'), [], { nofile: 256 });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 300; i += 1) {
        const socket = await openSocket(agent.socketPath);
        socket.on('error', () => undefined);
        socket.resume();
        sockets.push(socket);
      }
      // A new client gets in (the longest-idle connections made room), and says so once.
      expect(await callOnce(agent.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
      expect(await callOnce(agent.socketPath, 'info')).toMatchObject({ ok: { agent: expect.any(Object) } });
      const limitLines = agent.lines().filter((l) => l['msg'] === 'connection limit reached');
      expect(limitLines.length).toBeGreaterThanOrEqual(1);
      expect(limitLines.length).toBeLessThanOrEqual(3);
      expect(agent.log()).not.toMatch(/EMFILE/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await agent.stop();
    }
  }, 120_000);

  it('a cap above the open-file limit is lowered to fit (logged), so fds never run out on connections', async () => {
    const agent = await startAgent(path.join(work, 'emfile.sock'), ['--max-connections', '1000'], { nofile: 64 });
    const sockets: Socket[] = [];
    try {
      expect(agent.lines()).toContainEqual(expect.objectContaining({ msg: '--max-connections lowered to fit the open-file limit', requested: 1000, nofile: 64 }));
      const cap = agent.lines().find((l) => l['msg'] === 'ready')?.['maxConnections'] as number;
      expect(cap).toBeLessThan(64);
      for (let i = 0; i < 100; i += 1) {
        const socket = await openSocket(agent.socketPath);
        socket.on('error', () => undefined);
        socket.resume();
        sockets.push(socket);
      }
      expect(await callOnce(agent.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
      expect(agent.log()).toMatch(/"msg":"connection limit reached"/);
      expect(agent.log()).not.toMatch(/EMFILE/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await agent.stop();
    }
  }, 120_000);

  it('idle timeout closes a silent connection with a code, never one with a request running', async () => {
    const agent = await startAgent(path.join(work, 'idle.sock'), ['--idle-timeout', '2000', '--allow-exec', 'sh']);
    try {
      const silent = await rpcClient(agent.socketPath);
      expect(await closeReason(silent)).toBe('ERR_VMLINK_IDLE_TIMEOUT');
      // A command that is quiet for much longer than the idle timeout still finishes.
      const working = await rpcClient(agent.socketPath);
      const { body } = await working.request('exec', { command: 'sh', args: ['-c', 'sleep 5; echo done'] });
      const records = await readExecRecords(body!);
      expect(Buffer.concat(records.filter((r) => r.tag === 1).map((r) => r.data)).toString()).toBe('done\n');
      working.destroy();
      await agent.waitForLog(/"msg":"limit reached".*"code":"ERR_VMLINK_IDLE_TIMEOUT"/);
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it('frame timeout closes a slowloris client that never finishes its frame', async () => {
    const agent = await startAgent(path.join(work, 'slow.sock'), ['--frame-timeout', '500']);
    try {
      const socket = await openSocket(agent.socketPath);
      socket.on('error', () => undefined);
      let reply = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => (reply = Buffer.concat([reply, d])));
      const frame = Buffer.concat(encodeFrame({ type: 'REQUEST', id: 1, method: 'ping', params: { pad: 'x'.repeat(200) }, stream: undefined }));
      // One byte every 100 ms: the frame would take ~20 s to arrive.
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < frame.length && !socket.destroyed) socket.write(frame.subarray(sent, ++sent));
      }, 100);
      await closed(socket);
      clearInterval(timer);
      expect(sent).toBeLessThan(frame.length);
      expect(reply.toString('latin1')).toContain('ERR_VMLINK_FRAME_TIMEOUT');
      expect(await callOnce(agent.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it('memory budget: 10 clients x 16 unread downloads are refused beyond the budget (ERR_VMLINK_BUSY); RSS stays bounded', async () => {
    const agent = await startAgent(path.join(work, 'budget.sock'), ['--root', work, '--memory-budget', '32M']);
    const peers: RpcPeer[] = [];
    try {
      const before = await rssKiB(agent.child.pid!);
      let accepted = 0;
      let busy = 0;
      for (let c = 0; c < 10; c += 1) {
        const peer = await rpcClient(agent.socketPath);
        peers.push(peer);
        const outcomes = await Promise.allSettled(Array.from({ length: 16 }, () => peer.request('fs.read', { path: '/big.bin' }, { timeout: 30_000 })));
        for (const o of outcomes) {
          if (o.status === 'fulfilled') {
            accepted += 1;
            o.value.body?.on('error', () => undefined); // never read
          } else if ((o.reason as { code?: string }).code === 'ERR_VMLINK_BUSY') busy += 1;
          else throw new Error(`unexpected refusal: ${String(o.reason)}`, { cause: o.reason });
        }
      }
      // 16 MiB for requests at 3 MiB per download: 5 at most.
      expect(accepted).toBeGreaterThan(0);
      expect(accepted, `accepted ${accepted}, busy ${busy}`).toBeLessThanOrEqual(5);
      expect(busy).toBe(160 - accepted);
      expect(await callOnce(agent.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
      const grown = (await rssKiB(agent.child.pid!)) - before;
      expect(grown, `RSS grew by ${grown} KiB`).toBeLessThan(96 * 1024);
      expect(agent.lines().filter((l) => l['msg'] === 'memory budget spent').length).toBeLessThanOrEqual(2);
      for (const peer of peers) peer.destroy();
      peers.length = 0;
      // Released with the connections (once the agent has seen them close; BUSY means
      // "retry later"): a download runs to the end again.
      const reader = await rpcClient(agent.socketPath);
      let response: Awaited<ReturnType<RpcPeer['request']>> | undefined;
      await eventually(async () => {
        response = await reader.request('fs.read', { path: '/big.bin' }).catch((error: { code?: string }) => {
          if (error.code === 'ERR_VMLINK_BUSY') return undefined;
          throw error;
        });
        return response !== undefined;
      }, 'the budget to be released');
      const { result, body } = response!;
      let bytes = 0;
      for await (const chunk of body!) bytes += (chunk as Buffer).length;
      expect(result).toMatchObject({ size: 64 * 1024 * 1024 });
      expect(bytes).toBe(64 * 1024 * 1024 + 32);
      reader.destroy();
    } finally {
      for (const peer of peers) peer.destroy();
      await agent.stop();
    }
  }, 120_000);

  it('a client that pipelines pings and never reads the replies: bounded agent memory, others served', async () => {
    const agent = await startAgent(path.join(work, 'unread.sock'), []);
    try {
      const before = await rssKiB(agent.child.pid!);
      const socket = await openSocket(agent.socketPath);
      socket.on('error', () => undefined);
      socket.pause(); // never read
      const ping = Buffer.concat(encodeFrame({ type: 'REQUEST', id: 7, method: 'ping', params: {}, stream: undefined }));
      const batch = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
      // ~20 MB of requests; the agent stops reading once its replies back up, so our
      // writes stall too: stop when the kernel buffers are full.
      for (let i = 0; i < 100; i += 1) {
        if (!socket.write(batch)) {
          const drained = await Promise.race([
            new Promise<boolean>((resolve) => socket.once('drain', () => resolve(true))),
            new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000)),
          ]);
          if (!drained) break;
        }
      }
      expect(await callOnce(agent.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
      expect((await rssKiB(agent.child.pid!)) - before).toBeLessThan(64 * 1024);
      socket.destroy();
    } finally {
      await agent.stop();
    }
  }, 120_000);
});

describe('ConnectionSlots and MemoryBudget (pure)', () => {
  it('evicts the longest-idle connection of the biggest peer, never a busy one; refuses when all are busy', () => {
    const slots = new ConnectionSlots<string>(4, 3);
    slots.add('a1', { peer: 'uid:1', busy: false, lastActivity: 10 });
    slots.add('a2', { peer: 'uid:1', busy: false, lastActivity: 5 });
    slots.add('a3', { peer: 'uid:1', busy: true, lastActivity: 1 });
    expect(slots.admit('uid:1')).toMatchObject({ kind: 'evict', victim: 'a2', reason: 'peer-share' });
    expect(slots.admit('uid:2')).toEqual({ kind: 'admit' });
    slots.add('b1', { peer: 'uid:2', busy: false, lastActivity: 0 });
    // Full: the biggest holder (uid:1) loses its longest-idle one, not uid:2's older one.
    expect(slots.admit('uid:3')).toMatchObject({ kind: 'evict', victim: 'a2', reason: 'total' });
    slots.update('a1', { peer: 'uid:1', busy: true, lastActivity: 10 });
    slots.update('a2', { peer: 'uid:1', busy: true, lastActivity: 5 });
    expect(slots.admit('uid:1')).toMatchObject({ kind: 'refuse', reason: 'peer-share' });
    expect(slots.admit('uid:3')).toMatchObject({ kind: 'evict', victim: 'b1' });
    slots.update('b1', { peer: 'uid:2', busy: true, lastActivity: 0 });
    expect(slots.admit('uid:3')).toMatchObject({ kind: 'refuse', reason: 'total' });
    slots.remove('b1');
    expect(slots.admit('uid:3')).toEqual({ kind: 'admit' });
  });

  it('reads the soft open-file limit and fits the cap under it', () => {
    const text = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            256                  4096                 files\n';
    expect(readOpenFileLimit(text)).toBe(256);
    expect(readOpenFileLimit('Max open files            unlimited            unlimited            files')).toBeUndefined();
    expect(readOpenFileLimit()).toBeGreaterThan(0);
    expect(capForOpenFileLimit(64, 256)).toBe(64);
    expect(capForOpenFileLimit(1000, 64)).toBe(12);
    expect(capForOpenFileLimit(1000, undefined)).toBe(1000);
  });

  it('reserves and releases (twice is once)', () => {
    const budget = new MemoryBudget(10);
    const a = budget.tryReserve(6);
    expect(a).toBeDefined();
    expect(budget.tryReserve(6)).toBeUndefined();
    a?.();
    a?.();
    expect(budget.inUse).toBe(0);
    expect(budget.tryReserve(10)).toBeDefined();
  });
});
