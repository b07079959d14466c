/**
 * A misbehaving client cannot crash the agent or starve others: garbage frames, a client
 * that never reads its stream, a client that opens 1000 streams. Real agent child
 * process (built dist/cli.js), real Unix sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcPeer } from '@vmlink/rpc';

const GUEST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function open(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One call on a fresh connection, through @vmlink/rpc as any client would. */
async function call(socketPath: string, method: string, params: unknown = {}): Promise<{ ok?: unknown; err?: { code: string } }> {
  const peer = new RpcPeer(await open(socketPath));
  try {
    return { ok: await peer.call(method, params, { timeout: 10_000 }) };
  } catch (error) {
    return { err: { code: (error as { code: string }).code } };
  } finally {
    peer.destroy();
  }
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

describe('misbehaving clients', () => {
  let work: string;
  let socketPath: string;
  let agent: ChildProcess;
  let log = '';

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-abuse-'));
    await writeFile(path.join(work, 'big.bin'), randomBytes(64 * 1024 * 1024));
    socketPath = path.join(work, 'agent.sock');
    agent = spawn(process.execPath, [GUEST_CLI, '--listen', `unix:${socketPath}`, '--root', work, '--max-streams', '16'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    agent.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
    const deadline = Date.now() + 20_000;
    while (!log.includes(' ready ')) {
      if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 30_000);

  afterAll(async () => {
    if (process.env['VMLINK_DEBUG']) console.log(log);
    agent?.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('garbage bytes cannot take the agent down; a client that keeps sending them is dropped', async () => {
    for (const garbage of [Buffer.from([0, 0, 0, 2, 1, 2]), randomBytes(4096), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
      const socket = await open(socketPath);
      socket.on('error', () => undefined);
      socket.write(garbage);
      await new Promise((r) => setTimeout(r, 100));
      socket.destroy();
    }
    // Many small malformed frames (length 6, unknown type): answered, counted, then dropped.
    const noisy = await open(socketPath);
    const dropped = new Promise<void>((resolve) => noisy.once('close', () => resolve()));
    noisy.on('error', () => undefined);
    noisy.on('data', () => undefined);
    const bad = Buffer.from([0, 0, 0, 6, 0xee, 0, 0, 0, 0, 0]);
    for (let i = 0; i < 64; i += 1) noisy.write(bad);
    await dropped;
    expect(await call(socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    expect(agent.exitCode).toBeNull();
    expect(log).toMatch(/protocol error/);
  });

  it('malformed requests get an error reply and the connection lives on', async () => {
    expect(await call(socketPath, 'no.such.method')).toMatchObject({ err: { code: 'ERR_VMLINK_RPC_UNKNOWN_METHOD' } });
    expect(await call(socketPath, 'fs.stat', [1, 2])).toMatchObject({ err: { code: 'ERR_VMLINK_INVALID_PARAMS' } });
    expect(await call(socketPath, 'fs.stat', { path: 42 })).toMatchObject({ err: { code: 'ERR_VMLINK_INVALID_PATH' } });
    expect(await call(socketPath, 'fs.write', { path: '/x', size: -1 })).toMatchObject({ err: { code: 'ERR_VMLINK_INVALID_PARAMS' } });
  });

  it('1000 streams opened by one client: the excess is refused, others are still served', async () => {
    const greedy = new RpcPeer(await open(socketPath));
    // 1000 downloads at once, none of them read: every body stalls on its credit window.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 1000 }, () => greedy.request('fs.read', { path: '/big.bin' }, { timeout: 30_000 })),
    );
    const refused = outcomes.filter((o) => o.status === 'rejected' && (o.reason as { code?: string }).code === 'ERR_VMLINK_TOO_MANY_STREAMS');
    const accepted = outcomes.filter((o) => o.status === 'fulfilled');
    expect(accepted.length).toBeLessThanOrEqual(16);
    expect(refused.length).toBe(1000 - accepted.length);
    expect(await call(socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    for (const o of outcomes) if (o.status === 'fulfilled') o.value.body?.destroy();
    greedy.destroy();
  }, 60_000);

  it('a client that never reads its stream stalls only itself, with bounded agent memory', async () => {
    const before = await rssKiB(agent.pid as number);
    const stuck: RpcPeer[] = [];
    for (let i = 0; i < 4; i += 1) {
      const peer = new RpcPeer(await open(socketPath));
      // The body is never read: the agent's sends must wait for credit, not pile up.
      const { body } = await peer.request('fs.read', { path: '/big.bin' });
      body?.on('error', () => undefined); // destroyed with the peer at the end
      stuck.push(peer);
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(await call(socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    expect(await call(socketPath, 'fs.stat', { path: '/big.bin' })).toMatchObject({ ok: { size: 64 * 1024 * 1024 } });
    const after = await rssKiB(agent.pid as number);
    // 4 x 64 MiB would be 256 MiB if buffered; the credit window caps it near 4 x (1 MiB window + 1 MiB read-ahead).
    expect(after - before).toBeLessThan(128 * 1024);
    for (const peer of stuck) peer.destroy();
  }, 60_000);
});
