/**
 * Issue 14 items 4 and 7 end to end: the real agent (built dist/cli.js) over a real Unix
 * socket. Four fs.read of a FIFO used to park four threads in open(2) for good and wedge
 * every later file call of every client; error texts named the agent's real path.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { link, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcPeer } from '@vmlink/rpc';

const GUEST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const run = promisify(execFile);

function open(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

type Outcome = { ok?: unknown; err?: { code: string; message: string } };

/** One call on a fresh connection, through @vmlink/rpc as any client would. */
async function call(socketPath: string, method: string, params: unknown): Promise<Outcome> {
  const peer = new RpcPeer(await open(socketPath));
  try {
    return { ok: await peer.call(method, params, { timeout: 20_000 }) };
  } catch (error) {
    const e = error as { code: string; message: string };
    return { err: { code: e.code, message: e.message } };
  } finally {
    peer.destroy();
  }
}

describe('file methods of the real agent on special files', () => {
  let work: string;
  let root: string;
  let socketPath: string;
  let agent: ChildProcess;
  let log = '';

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-fsagent-'));
    root = path.join(work, 'root');
    await run('mkdir', [root]);
    await run('mkfifo', [path.join(root, 'fifo')]);
    await writeFile(path.join(root, 'plain.txt'), 'plain');
    await writeFile(path.join(work, 'outside.txt'), 'outside secret');
    await link(path.join(work, 'outside.txt'), path.join(root, 'hardlink'));
    socketPath = path.join(work, 'agent.sock');
    agent = spawn(process.execPath, [GUEST_CLI, '--listen', `unix:${socketPath}`, '--root', root], { stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
    const deadline = Date.now() + 20_000;
    while (!log.includes(' ready ')) {
      if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 30_000);

  afterAll(async () => {
    agent?.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('refuses fs.read of a FIFO, four times over, and keeps serving every client', { timeout: 60_000 }, async () => {
    const reads = await Promise.all([1, 2, 3, 4].map(() => call(socketPath, 'fs.read', { path: '/fifo' })));
    for (const read of reads) expect(read.err).toMatchObject({ code: 'ERR_VMLINK_NOT_REGULAR_FILE', message: expect.stringContaining("'/fifo'") });
    expect((await call(socketPath, 'fs.stat', { path: '/plain.txt' })).ok).toMatchObject({ type: 'file', size: 5 });
    expect((await call(socketPath, 'fs.list', { path: '/' })).ok).toMatchObject({ path: '/' });
  });

  it('refuses a hard-linked file by default, and names only the client path in errors', { timeout: 60_000 }, async () => {
    expect((await call(socketPath, 'fs.read', { path: '/hardlink' })).err).toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    const missing = await call(socketPath, 'fs.stat', { path: '/nope' });
    expect(missing.err).toMatchObject({ code: 'ENOENT', message: expect.stringContaining("'/nope'") });
    expect(missing.err?.message).not.toContain(work);
  });
});
