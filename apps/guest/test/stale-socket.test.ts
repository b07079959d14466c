/**
 * The stale-socket reclaim of issue 14: `--listen unix:/some/regular-file` used to unlink
 * the file. Only a socket (lstat, symlinks not followed) that nobody answers on may go.
 * The real agent against a regular file, a symlink to a file, a live socket and a socket
 * left by a SIGKILLed process; and the socket it binds is 0600.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { connect as connectTo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/** Starts an agent on `socketPath` expecting it to fail: its exit code and log. */
async function failedAgent(socketPath: string): Promise<{ code: number | null; log: string }> {
  const agent = await startAgent(socketPath, [], { noWait: true });
  return { code: await agent.exited, log: agent.log() };
}

describe('stale-socket reclaim at agent start', () => {
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
    const run = await failedAgent(file);
    expect(run.code).toBe(1);
    expect(run.log).toMatch(/cannot listen.*(ENOTSOCK|EADDRINUSE)/);
    expect(await readFile(file, 'utf8')).toBe('keep me');
  }, 30_000);

  it('a symlink to a file: neither the link nor its target is removed', async () => {
    const target = path.join(work, 'target.txt');
    const link = path.join(work, 'link.sock');
    await writeFile(target, 'target');
    await symlink(target, link);
    expect((await failedAgent(link)).code).toBe(1);
    expect(await readlink(link)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe('target');
  }, 30_000);

  it('a live socket is left alone (and keeps serving)', async () => {
    const live = path.join(work, 'live.sock');
    const server = createServer((socket) => socket.on('error', () => undefined).end('still me'));
    await new Promise<void>((resolve) => server.listen(live, resolve));
    try {
      const run = await failedAgent(live);
      expect(run.code).toBe(1);
      expect(run.log).toMatch(/EADDRINUSE/);
      expect((await lstat(live)).isSocket()).toBe(true);
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connectTo(live);
        let text = '';
        socket.setEncoding('utf8').on('data', (t: string) => (text += t)).on('end', () => resolve(text)).on('error', reject);
      });
      expect(answer).toBe('still me');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);

  it('a dead socket is reclaimed; the new one is 0600', async () => {
    const dead = path.join(work, 'agent-dead.sock');
    await deadSocket(dead);
    const agent = await startAgent(dead, []);
    try {
      expect(await callOnce(dead, 'ping')).toMatchObject({ ok: { pong: true } });
      expect((await lstat(dead)).mode & 0o777).toBe(0o600);
    } finally {
      await agent.stop();
    }
  }, 30_000);
});


