/**
 * `vmlink cp` download failures on the local side, with real CLI child processes (built
 * dist/) against a stand-in agent: an RpcPeer in this process serving fs.read over a real
 * Unix socket (so a download can be held mid-way, or made any size, deterministically).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcPeer, withBody } from '@vmlink/rpc';
import { ExitCode } from '../src/exit-codes.js';
import { partNameFor, processGone } from '../src/stale-parts.js';
import { runVmlink, spawnVmlink } from './helpers.js';

const MiB = 1024 * 1024;

/** Remote files of the stand-in agent: their bytes, or 'stall' (send 1 MiB of a 64 MiB file, then nothing). */
const files = new Map<string, Buffer | 'stall'>();

/** fs.read's reply as vmlink-guest sends it: { size }, then the bytes and their 32-byte SHA-256. */
function serveRead(params: unknown): unknown {
  const remote = (params as { path: string }).path;
  const content = files.get(remote);
  if (content === undefined) throw Object.assign(new Error(`ENOENT: ${remote}`), { code: 'ENOENT' });
  if (content === 'stall') {
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(MiB, 1);
      await new Promise(() => {}); // never more: the CLI is killed meanwhile
    }
    return withBody({ size: 64 * MiB }, stalled());
  }
  const digest = createHash('sha256').update(content).digest();
  return withBody({ size: content.length }, [content, digest]);
}

let dir: string;
let uri: string;
let server: Server;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'vmlink-cp-local-'));
  const socketPath = path.join(dir, 'agent.sock');
  server = createServer((socket) => {
    socket.on('error', () => undefined);
    new RpcPeer(socket, { handlers: { 'fs.read': serveRead } });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  uri = `unix:${socketPath}`;
});

afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

async function waitFor(predicate: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const parts = async (where: string): Promise<string[]> => (await readdir(where)).filter((n) => n.endsWith('.part')).sort();

describe('vmlink cp: stale partial downloads', () => {
  it('a CLI SIGKILLed mid-download leaves its .part; the next run removes it (and those of zombies), not those of live processes', async () => {
    const local = path.join(dir, 'killed');
    await mkdir(local);
    files.set('/big.bin', 'stall');
    const copy = spawnVmlink(['cp', `${uri}:/big.bin`, path.join(local, 'big.bin')]);
    const pid = copy.child.pid as number;
    await waitFor(async () => {
      const [name] = await parts(local);
      return name !== undefined && (await stat(path.join(local, name))).size >= MiB;
    }, 'the download to be 1 MiB in');
    copy.child.kill('SIGKILL');
    await copy.done;
    // The attack as reported: the killed CLI had no chance to clean up.
    const [stale] = await parts(local);
    expect(stale).toMatch(new RegExp(`^\\.big\\.bin\\.vmlink-${pid}-[0-9a-f]{12}\\.part$`));
    expect((await stat(path.join(local, stale as string))).size).toBeGreaterThanOrEqual(MiB);

    // A zombie: a child that exits once its parent has exec'd `sleep 60`, which never reaps
    // it (a child that exited before the exec could be reaped by the shell itself).
    const waitForExec = 'p=$$; (while read -r comm < /proc/$p/comm && [ "$comm" != sleep ]; do :; done) &';
    const parent = spawn('sh', ['-c', `${waitForExec} echo $!; exec sleep 60`], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      const state = (): string => {
        const text = readFileSync(`/proc/${zombie}/stat`, 'latin1');
        return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3);
      };
      await waitFor(() => state() === 'Z', `pid ${zombie} to be a zombie`);
      expect(processGone(zombie)).toBe(true);
      const zombiePart = partNameFor('z.bin', zombie);
      const livePart = partNameFor('live.bin', parent.pid as number); // `sleep 60`: alive
      const foreign = '.other.bin.part'; // not named by us: never touched
      for (const name of [zombiePart, livePart, foreign]) await writeFile(path.join(local, name), 'partial');

      files.set('/small.bin', Buffer.from('hello, next run\n'));
      const next = await runVmlink(['cp', `${uri}:/small.bin`, path.join(local, 'small.bin')]);
      expect(next.code, next.stderr).toBe(0);
      expect(await parts(local)).toEqual([foreign, livePart].sort());
      expect(readFileSync(path.join(local, 'small.bin'), 'utf8')).toBe('hello, next run\n');
    } finally {
      parent.kill('SIGKILL');
    }
  }, 60_000);

  it('processGone: this process is alive, an exited and reaped child is gone', async () => {
    expect(processGone(process.pid)).toBe(false);
    const child = spawn('true');
    await new Promise((resolve) => child.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 20)); // libuv reaps it on SIGCHLD
    expect(processGone(child.pid as number)).toBe(true);
  });
});

describe('vmlink cp: a full local file system', () => {
  let mountPoint: string | undefined;
  let unavailable: string | undefined;

  beforeAll(() => {
    if (process.getuid?.() !== 0) {
      unavailable = 'mounting a small tmpfs needs root';
      return;
    }
    const target = mkdtempSync(path.join(tmpdir(), 'vmlink-cp-enospc-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'vmlink-cp-enospc', target], { stdio: 'pipe' });
      mountPoint = target;
    } catch (error) {
      unavailable = `cannot mount a tmpfs here: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
    }
  });

  afterAll(async () => {
    if (mountPoint === undefined) return;
    execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    await rm(mountPoint, { recursive: true, force: true });
  });

  it('ENOSPC while writing a download exits 73 (local file), names the local file, and leaves no .part', async (test) => {
    if (mountPoint === undefined) return test.skip(unavailable ?? 'no tmpfs');
    files.set('/four.bin', Buffer.alloc(4 * MiB, 9));
    const target = path.join(mountPoint, 'four.bin');
    const result = await runVmlink(['cp', `${uri}:/four.bin`, target]);
    expect(result.code, result.stderr).toBe(ExitCode.LOCAL_FILE);
    expect(result.stderr).toContain(`local file '${target}'`);
    expect(result.stderr).toMatch(/ENOSPC/);
    expect(await readdir(mountPoint)).toEqual([]);
  }, 60_000);
});
