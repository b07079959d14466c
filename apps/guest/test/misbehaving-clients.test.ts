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
import { FrameDecoder, FrameType, encodeJson, type Frame } from '../src/wire.js';

const GUEST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function open(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A raw client speaking the frames by hand: test code, not a fake agent. */
async function call(socketPath: string, method: string, params: unknown = {}): Promise<{ ok?: unknown; err?: { code: string } }> {
  const socket = await open(socketPath);
  const decoder = new FrameDecoder();
  try {
    return await new Promise((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk)) {
          if (frame.type === FrameType.RESPONSE) resolve(JSON.parse(frame.payload.toString('utf8')) as { ok?: unknown });
        }
      });
      socket.once('close', () => reject(new Error('closed before the answer')));
      socket.write(encodeJson(FrameType.REQUEST, 1, { method, params, body: false }));
    });
  } finally {
    socket.destroy();
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

  it('garbage bytes and an oversized length close only that connection', async () => {
    for (const garbage of [Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), randomBytes(4096), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
      const socket = await open(socketPath);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('error', () => undefined);
      socket.write(garbage);
      await closed;
    }
    expect(await call(socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    expect(agent.exitCode).toBeNull();
    expect(log).toMatch(/protocol error/);
  });

  it('malformed requests get an error reply and the connection lives on', async () => {
    expect(await call(socketPath, 'no.such.method')).toMatchObject({ err: { code: 'ERR_VMLINK_UNKNOWN_METHOD' } });
    expect(await call(socketPath, 'fs.stat', [1, 2])).toMatchObject({ err: { code: 'ERR_VMLINK_INVALID_PARAMS' } });
    expect(await call(socketPath, 'fs.stat', { path: 42 })).toMatchObject({ err: { code: 'ERR_VMLINK_INVALID_PATH' } });
    expect(await call(socketPath, 'fs.write', { path: '/x', size: -1 })).toMatchObject({ err: { code: 'ERR_VMLINK_INVALID_PARAMS' } });
  });

  it('1000 streams opened by one client: the excess is refused, others are still served', async () => {
    const greedy = await open(socketPath);
    const decoder = new FrameDecoder();
    const refusals: Frame[] = [];
    greedy.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) if (frame.type === FrameType.RESPONSE) refusals.push(frame);
    });
    greedy.pause(); // after the first data event handler is attached: read slowly, in bursts
    for (let id = 1; id <= 1000; id += 1) greedy.write(encodeJson(FrameType.REQUEST, id, { method: 'fs.read', params: { path: '/big.bin' }, body: false }));
    greedy.resume();
    const deadline = Date.now() + 30_000;
    while (refusals.length < 1000 - 16 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const codes = refusals.map((f) => (JSON.parse(f.payload.toString('utf8')) as { err?: { code: string } }).err?.code);
    expect(codes.filter((c) => c === 'ERR_VMLINK_TOO_MANY_STREAMS').length).toBeGreaterThanOrEqual(1000 - 16);
    expect(await call(socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    greedy.destroy();
  }, 60_000);

  it('a client that never reads its stream stalls only itself, with bounded agent memory', async () => {
    const before = await rssKiB(agent.pid as number);
    const stuck: Socket[] = [];
    for (let i = 0; i < 4; i += 1) {
      const socket = await open(socketPath);
      socket.pause(); // never read: the agent's sends must wait for credit, not pile up
      socket.write(encodeJson(FrameType.REQUEST, 1, { method: 'fs.read', params: { path: '/big.bin' }, body: false }));
      stuck.push(socket);
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(await call(socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    expect(await call(socketPath, 'fs.stat', { path: '/big.bin' })).toMatchObject({ ok: { size: 64 * 1024 * 1024 } });
    const after = await rssKiB(agent.pid as number);
    // 4 x 64 MiB would be 256 MiB if buffered; the credit window caps it near 4 x 9 MiB.
    expect(after - before).toBeLessThan(128 * 1024);
    for (const socket of stuck) socket.destroy();
  }, 60_000);
});
