/**
 * The stale-socket reclaim of issue 14: `--listen unix:/some/regular-file` used to unlink
 * the file. Only a socket (lstat, symlinks not followed) that nobody answers on may go.
 * Real files, real sockets, a socket left by a SIGKILLed process.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reclaimStaleSocket } from '../src/listen/stale-socket.js';
import { callOnce, startAgent } from './helpers.js';

/** A socket file whose listener was SIGKILLed: nothing answers, the file stays. */
async function deadSocket(socketPath: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  expect((await lstat(socketPath)).isSocket()).toBe(true);
}

describe('stale-socket reclaim', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-stale-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('a regular file is never removed', async () => {
    const file = path.join(work, 'precious.txt');
    await writeFile(file, 'keep me');
    await expect(reclaimStaleSocket(file)).rejects.toMatchObject({ code: 'EADDRINUSE', message: expect.stringContaining('a regular file') });
    expect(await readFile(file, 'utf8')).toBe('keep me');
  });

  it('a symlink to a file: neither the link nor its target is removed', async () => {
    const target = path.join(work, 'target.txt');
    const link = path.join(work, 'link.sock');
    await writeFile(target, 'target');
    await symlink(target, link);
    await expect(reclaimStaleSocket(link)).rejects.toMatchObject({ code: 'EADDRINUSE', message: expect.stringContaining('a symlink') });
    expect(await readlink(link)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe('target');
  });

  it('a live socket is left alone', async () => {
    const live = path.join(work, 'live.sock');
    const server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(live, resolve));
    try {
      await expect(reclaimStaleSocket(live)).rejects.toMatchObject({ code: 'EADDRINUSE', message: expect.stringContaining('another process serves') });
      expect((await lstat(live)).isSocket()).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a dead socket is removed', async () => {
    const dead = path.join(work, 'dead.sock');
    await deadSocket(dead);
    expect(await reclaimStaleSocket(dead)).toBe('removed');
    await expect(lstat(dead)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the agent: --listen on a regular file fails and keeps the file; on a dead socket it serves', async () => {
    const file = path.join(work, 'not-a-socket');
    await writeFile(file, 'data');
    const refused = await startAgent(file, [], { noWait: true });
    expect(await refused.exited).toBe(1);
    expect(refused.log()).toMatch(/EADDRINUSE/);
    expect(await readFile(file, 'utf8')).toBe('data');

    const dead = path.join(work, 'agent-dead.sock');
    await deadSocket(dead);
    const agent = await startAgent(dead, []);
    try {
      expect(agent.log()).toMatch(/removed a stale socket/);
      expect(await callOnce(dead, 'ping')).toMatchObject({ ok: { pong: true } });
    } finally {
      await agent.stop();
    }
  }, 60_000);
});
