import { execFile } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createBackend, type AioBackend } from '@vmlink/aio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDirectory, readFileStreamed, statPath, writeFileAtomic } from '../src/methods/files.js';
import { RootJail } from '../src/policy/confine.js';

/**
 * Issue 14 items 4 and 7 and the error-text point, on real special files: a FIFO (which
 * blocks an open(O_RDONLY) until a writer comes), a character device made with mknod, a
 * /proc file (size 0 but content), hard links to a file outside the root.
 */
const run = promisify(execFile);
const NOT_REGULAR = 'ERR_VMLINK_NOT_REGULAR_FILE';

async function* bytes(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}

async function collect(backend: AioBackend, jail: RootJail, remote: string): Promise<string> {
  const chunks: Buffer[] = [];
  await readFileStreamed(backend, jail, remote, async (c) => { chunks.push(Buffer.from(c)); }, new AbortController().signal);
  return Buffer.concat(chunks).toString('utf8');
}

async function openFdCount(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

describe.each(['fs', 'threadpool', 'iosubmit'] as const)('special files over the %s AIO backend', (backendName) => {
  let base: string;
  let root: string;
  let jail: RootJail;
  let backend: AioBackend;
  const signal = new AbortController().signal;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-special-'));
    root = path.join(base, 'root');
    await mkdir(path.join(root, 'dir'), { recursive: true });
    await run('mkfifo', [path.join(root, 'fifo')]);
    await run('mknod', [path.join(root, 'null'), 'c', '1', '3']);
    await writeFile(path.join(root, 'plain.txt'), 'plain');
    await writeFile(path.join(base, 'outside.txt'), 'outside secret');
    await link(path.join(base, 'outside.txt'), path.join(root, 'hardlink'));
    jail = await RootJail.create(root);
    backend = await createBackend(backendName);
  });
  afterAll(async () => {
    await backend.close();
    await jail.close();
    await rm(base, { recursive: true, force: true });
  });

  it('refuses fs.read of a FIFO with a clear code, and 4 of them leave the next calls unaffected', async () => {
    const reads = await Promise.allSettled([1, 2, 3, 4].map(() => collect(backend, jail, '/fifo')));
    for (const read of reads) {
      expect(read).toMatchObject({ status: 'rejected', reason: { code: NOT_REGULAR, message: expect.stringContaining("'/fifo' is a FIFO") } });
    }
    // Before the fix each read parked a thread in open(2) for good; these would never settle.
    expect(await statPath(jail, '/plain.txt')).toMatchObject({ type: 'file', size: 5 });
    expect(await collect(backend, jail, '/plain.txt')).toBe('plain');
    expect(await statPath(jail, '/fifo')).toMatchObject({ path: '/fifo', type: 'other' });
    await expect(listDirectory(jail, '/fifo', 10)).rejects.toMatchObject({ code: 'ENOTDIR', message: expect.stringContaining("'/fifo'") });
  });

  it('refuses a character device as not a regular file (not EISDIR), and a directory as EISDIR', async () => {
    await expect(collect(backend, jail, '/null')).rejects.toMatchObject({ code: NOT_REGULAR, message: expect.stringContaining('character device') });
    await expect(collect(backend, jail, '/dir')).rejects.toMatchObject({ code: 'EISDIR', message: expect.stringContaining("'/dir'") });
    await expect(collect(backend, jail, '/')).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('never sends a /proc file as 0 verified bytes', async () => {
    const proc = await RootJail.create('/proc');
    try {
      expect(await statPath(proc, '/cpuinfo')).toMatchObject({ type: 'file', size: 0 });
      await expect(collect(backend, proc, '/cpuinfo')).rejects.toMatchObject({ code: NOT_REGULAR, message: expect.stringContaining('reports 0 bytes but has content') });
    } finally {
      await proc.close();
    }
  });

  it('still serves a real empty file', async () => {
    await writeFile(path.join(root, 'empty'), '');
    expect(await collect(backend, jail, '/empty')).toBe('');
  });

  it('refuses fs.read and fs.stat of a file with more than one hard link unless allowed', async () => {
    await expect(collect(backend, jail, '/hardlink')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE', message: expect.stringContaining('--allow-hardlinks') });
    await expect(statPath(jail, '/hardlink')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE', message: expect.stringContaining("'/hardlink' has 2 hard links") });
    // Listing names it (the name is inside the root) but fs.read/fs.stat refuse it.
    expect((await listDirectory(jail, '/', 100)).entries.map((e) => e.name)).toContain('hardlink');
    const allowing = await RootJail.create(root, { allowHardlinks: true });
    try {
      expect(await collect(backend, allowing, '/hardlink')).toBe('outside secret');
      expect(await statPath(allowing, '/hardlink')).toMatchObject({ type: 'file', size: 14 });
    } finally {
      await allowing.close();
    }
  });

  it('fs.write over a hard-linked name replaces the name, never the other link\'s content', async () => {
    await link(path.join(base, 'outside.txt'), path.join(root, 'hardlink-w'));
    await writeFileAtomic(backend, jail, '/hardlink-w', bytes('mine'), { maxBytes: 100, signal });
    expect(await readFile(path.join(root, 'hardlink-w'), 'utf8')).toBe('mine');
    expect(await readFile(path.join(base, 'outside.txt'), 'utf8')).toBe('outside secret');
  });

  it('names the client path in every error, never the agent\'s real path', async () => {
    const attempts: [string, () => Promise<unknown>][] = [
      ['/nope', () => statPath(jail, '/nope')],
      ['/nope', () => listDirectory(jail, '/nope', 10)],
      ['/nope', () => collect(backend, jail, '/nope')],
      ['/nope/x', () => writeFileAtomic(backend, jail, '/nope/x', bytes('x'), { maxBytes: 10, signal })],
      ['/plain.txt/x', () => statPath(jail, '/plain.txt/x')],
    ];
    for (const [remote, attempt] of attempts) {
      const error = await attempt().then(() => undefined, (e: Error & { code?: string; path?: string }) => e);
      expect(error, remote).toMatchObject({ code: expect.stringMatching(/^ENOENT|ENOTDIR$/), message: expect.stringContaining(`'${remote}'`), path: remote });
      expect(error?.message).not.toContain(base);
      expect(error?.message).not.toContain('/proc/self');
    }
  });

  it('leaks no fd on success or failure', async () => {
    const before = await openFdCount();
    for (let i = 0; i < 10; i += 1) {
      await collect(backend, jail, '/plain.txt');
      await statPath(jail, '/plain.txt');
      await listDirectory(jail, '/', 100);
      await writeFileAtomic(backend, jail, '/dir/out.txt', bytes(`round ${i}`), { maxBytes: 100, signal });
      for (const bad of ['/fifo', '/null', '/hardlink', '/nope', '/dir']) await collect(backend, jail, bad).catch(() => undefined);
      await writeFileAtomic(backend, jail, '/dir/sum.txt', bytes('x'), { maxBytes: 100, expectedSha256: '0'.repeat(64), signal }).catch(() => undefined);
      await writeFileAtomic(backend, jail, '/dir', bytes('x'), { maxBytes: 100, signal }).catch(() => undefined);
    }
    expect(await openFdCount()).toBe(before);
  });
});
