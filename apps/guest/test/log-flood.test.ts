/**
 * Log flooding (issue 14, item 9): 100,000 random frames used to produce ~200,000 error
 * lines. Over a real Unix socket against a real agent, reconnecting whenever the agent
 * drops the noisy connection: a bounded number of lines, at warning level (so --quiet
 * silences them), and a well-behaved client is served all along.
 * Plus the pure pieces: the repeat limiter (a fake clock) and the logger's levels.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitedLog } from '../src/log/limited-log.js';
import { RepeatLimiter } from '../src/log/repeat-limiter.js';
import { createLogger } from '../src/request-log.js';
import { openSocket, rpcClient, startAgent, type AgentProcess } from './helpers.js';

const FRAMES = 100_000;
const BATCH = 500;

/** `count` random frames: a plausible length prefix (6..48) and random bytes. */
function randomFrames(count: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i += 1) {
    const body = randomBytes(6 + Math.floor(Math.random() * 43));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    parts.push(length, body);
  }
  return Buffer.concat(parts);
}

/** Writes one batch on a fresh connection; resolves when the agent has closed it (or it took all). */
async function sendBatch(socketPath: string, frames: Buffer): Promise<void> {
  const socket = await openSocket(socketPath);
  socket.on('error', () => undefined);
  socket.on('data', () => undefined); // read what it answers
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.end(frames);
  });
}

describe('log flooding', () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-flood-'));
    agent = await startAgent(path.join(work, 'agent.sock'), []);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it(`${FRAMES} random frames: fewer than 50 log lines, all warnings, and another client is served throughout`, async () => {
    const linesBefore = agent.lines().length;
    const good = await rpcClient(agent.socketPath);
    let pings = 0;
    for (let sent = 0; sent < FRAMES; sent += BATCH) {
      await sendBatch(agent.socketPath, randomFrames(BATCH));
      if (sent % (BATCH * 20) === 0) {
        expect(await good.call('ping', {}, { timeout: 30_000 })).toMatchObject({ pong: true });
        pings += 1;
      }
    }
    expect(await good.call('ping', {}, { timeout: 30_000 })).toMatchObject({ pong: true });
    good.destroy();
    const lines = agent.lines().slice(linesBefore);
    if (process.env['VMLINK_DEBUG']) console.log(lines);
    expect(pings).toBeGreaterThan(5);
    expect(lines.length, JSON.stringify(lines.slice(0, 60), null, 1)).toBeLessThan(50);
    expect(lines.filter((l) => l['kind'] === 'error')).toEqual([]);
    expect(lines.some((l) => l['msg'] === 'protocol error' && l['kind'] === 'warn')).toBe(true);
    expect(agent.child.exitCode).toBeNull();
  }, 300_000);
});

describe('RepeatLimiter (pure, fake clock)', () => {
  it('lets a burst through per key and interval, then one summary per interval', () => {
    let now = 0;
    const summaries: [string, number][] = [];
    const limiter = new RepeatLimiter({ burst: 3, intervalMs: 1000, now: () => now, onSuppressed: (key, n) => summaries.push([key, n]) });
    const admitted = Array.from({ length: 100 }, () => limiter.admit('a')).filter(Boolean).length;
    expect(admitted).toBe(3);
    expect(limiter.admit('b')).toBe(true); // another key has its own burst
    now = 1000;
    expect(limiter.admit('a')).toBe(true); // a new interval: the summary of the old one first
    expect(summaries).toEqual([['a', 97]]);
    limiter.flushAll();
    expect(summaries).toEqual([['a', 97]]); // nothing more was held back
  });

  it('bounds the keys it tracks', () => {
    const limiter = new RepeatLimiter({ burst: 1, intervalMs: 60_000, maxKeys: 10, onSuppressed: () => undefined });
    for (let i = 0; i < 1000; i += 1) limiter.admit(`key-${i}`);
    expect(limiter.trackedKeys).toBeLessThanOrEqual(11);
    limiter.flushAll();
  });

  it('LimitedLog keys on message, code and client; successful requests are never held back', () => {
    const lines: string[] = [];
    const log = new LimitedLog(createLogger({ json: false, quiet: false, write: (l) => lines.push(l) }), { burst: 2, intervalMs: 60_000 });
    for (let i = 0; i < 10; i += 1) log.warn('uid:1', 'protocol error', { code: 'X' });
    for (let i = 0; i < 10; i += 1) log.warn('uid:2', 'protocol error', { code: 'X' });
    for (let i = 0; i < 10; i += 1) log.request('uid:1', { method: 'ping', peer: 'p', durationMs: 1, result: 'OK' });
    expect(lines.filter((l) => l.includes('protocol error'))).toHaveLength(4);
    expect(lines.filter((l) => l.includes(' req ping'))).toHaveLength(10);
    log.flush();
    expect(lines.filter((l) => l.includes('suppressed 8 similar lines'))).toHaveLength(2);
  });

  it('--quiet silences warnings and events, never errors', () => {
    const lines: string[] = [];
    const log = createLogger({ json: true, quiet: true, write: (l) => lines.push(l) });
    log.warn('protocol error', { code: 'X' });
    log.event('connected');
    log.error('cannot listen');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['cannot listen']);
  });
});
