/**
 * Issue 12 §3: mkdir, rm, mv, chmod, utimes, the prefix hash and resumed reads, on real
 * files beneath a real RootJail, and attacked: `..` and symlink tricks, rm -r of the
 * root, mv out of the root, chmod through a symlink, setuid bits, and a swap loop
 * (renameat2 RENAME_EXCHANGE) racing every new method. Nothing outside may change.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBackend, type AioBackend } from '@vmlink/aio';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openForRead, statPath, streamOpenedFile } from '../src/methods/files.js';
import { changeMode, changeTimes, hashPrefix, makeDirectory, movePath, removePath } from '../src/methods/manage.js';
import { RootJail } from '../src/policy/confine.js';

const never = new AbortController().signal;
const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Everything under `dir` with its mode, size and content hash: a snapshot to compare. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const full = path.join(d, name);
      const s = await lstat(full);
      out.push(`${path.relative(dir, full)} ${s.mode.toString(8)} ${s.size} ${Math.round(s.mtimeMs)} ${s.isFile() ? sha(await readFile(full)) : ''}`);
      if (s.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
  return out;
}

describe('file management beneath the root', () => {
  let base: string;
  let root: string;
  let outside: string;
  let jail: RootJail;
  let backend: AioBackend;
  let outsideBefore: string[];

  beforeAll(async () => {
    backend = await createBackend('fs');
  });
  afterAll(async () => {
    await backend.close();
  });

  beforeEach(async () => {
    await jail?.close().catch(() => undefined);
    if (base) await rm(base, { recursive: true, force: true });
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-manage-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'dir', 'sub'), { recursive: true });
    await mkdir(path.join(outside, 'victim'), { recursive: true });
    await writeFile(path.join(root, 'dir', 'a.txt'), 'a');
    await writeFile(path.join(root, 'dir', 'sub', 'b.txt'), 'bb');
    await writeFile(path.join(outside, 'secret.txt'), 'secret');
    await writeFile(path.join(outside, 'victim', 'keep.txt'), 'keep');
    await chmod(path.join(outside, 'secret.txt'), 0o600);
    await symlink(outside, path.join(root, 'out'));
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'secret-link'));
    await symlink('../..', path.join(root, 'dir', 'up'));
    outsideBefore = await snapshot(outside);
    jail = await RootJail.create(root);
  });

  afterAll(async () => {
    await jail?.close().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });

  const outsideUnchanged = async (): Promise<void> => expect(await snapshot(outside)).toEqual(outsideBefore);

  it('mkdir: one level, parents, existing, modes (never setuid/setgid/sticky)', async () => {
    expect(await makeDirectory(jail, '/new', 0o700, undefined)).toEqual({ path: '/new', created: true });
    expect((await stat(path.join(root, 'new'))).mode & 0o777).toBe(0o700);
    expect(await makeDirectory(jail, '/p/q/r', undefined, true)).toEqual({ path: '/p/q/r', created: true });
    expect(await makeDirectory(jail, '/p/q/r', undefined, true)).toEqual({ path: '/p/q/r', created: false });
    await expect(makeDirectory(jail, '/new', undefined, undefined)).rejects.toMatchObject({ code: 'EEXIST', path: '/new' });
    await expect(makeDirectory(jail, '/dir/a.txt/x', undefined, true)).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirectory(jail, '/x', 0o4755, undefined)).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining('2541') });
    await expect(makeDirectory(jail, '/x', '755', undefined)).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining("'755'") });
    await expect(makeDirectory(jail, '/nope/x', undefined, undefined)).rejects.toMatchObject({ code: 'ENOENT', message: expect.not.stringContaining(root) });
  });

  it('mkdir through tricks lands inside or is refused: .., symlinks out', async () => {
    await expect(makeDirectory(jail, '/../evil', undefined, undefined)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(makeDirectory(jail, '/out/evil', undefined, undefined)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(makeDirectory(jail, '/dir/up/evil', undefined, true)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await outsideUnchanged();
  });

  it('rm: files, links (never their targets), directories only with recursive, never the root', async () => {
    expect(await removePath(jail, '/dir/a.txt', undefined, never)).toEqual({ path: '/dir/a.txt', removed: 1 });
    // The links are removed as links: what they point to outside stays.
    expect(await removePath(jail, '/secret-link', undefined, never)).toMatchObject({ removed: 1 });
    expect(await removePath(jail, '/out', true, never)).toMatchObject({ removed: 1 });
    await expect(removePath(jail, '/dir', undefined, never)).rejects.toMatchObject({ code: 'EISDIR', path: '/dir' });
    for (const rootSpelling of ['/', '', '.', '/dir/..', '//./']) {
      await expect(removePath(jail, rootSpelling || '/', true, never)).rejects.toMatchObject({ code: 'ERR_VMLINK_ROOT_PROTECTED' });
    }
    await expect(removePath(jail, '/dir/../..', true, never)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(removePath(jail, '/nope', undefined, never)).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining("'/nope'") });
    await outsideUnchanged();
  });

  it('rm -r removes a tree but not through symlinks in it; a symlink to the root is just a link', async () => {
    await symlink(outside, path.join(root, 'dir', 'sub', 'to-outside'));
    await symlink('/', path.join(root, 'dir', 'to-root'));
    expect(await removePath(jail, '/dir', true, never)).toEqual({ path: '/dir', removed: 7 });
    expect((await readdir(root)).sort()).toEqual(['out', 'secret-link']);
    await outsideUnchanged();
    // rm -r of a path that walks through a symlink to the root is the root: refused.
    await symlink('.', path.join(root, 'self'));
    await expect(removePath(jail, '/self/..', true, never)).rejects.toMatchObject({ code: 'ERR_VMLINK_ROOT_PROTECTED' });
  });

  it('mv: within the root; never out of it, never the root, links moved as links', async () => {
    expect(await movePath(jail, '/dir/a.txt', '/dir/sub/c.txt')).toEqual({ from: '/dir/a.txt', to: '/dir/sub/c.txt' });
    expect(await readFile(path.join(root, 'dir', 'sub', 'c.txt'), 'utf8')).toBe('a');
    await expect(movePath(jail, '/dir/sub', '/../stolen')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(movePath(jail, '/dir/sub', '/out/stolen')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(movePath(jail, '/dir/sub', '/dir/up/stolen')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(movePath(jail, '/out/secret.txt', '/mine.txt')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(movePath(jail, '/', '/x')).rejects.toMatchObject({ code: 'ERR_VMLINK_ROOT_PROTECTED' });
    await expect(movePath(jail, '/dir', '/')).rejects.toMatchObject({ code: 'ERR_VMLINK_ROOT_PROTECTED' });
    await expect(movePath(jail, '/dir', '/dir/sub/inner')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(movePath(jail, '/nope', '/x')).rejects.toMatchObject({ code: 'ENOENT', path: '/nope' });
    expect(await movePath(jail, '/secret-link', '/renamed-link')).toMatchObject({ to: '/renamed-link' });
    expect((await lstat(path.join(root, 'renamed-link'))).isSymbolicLink()).toBe(true);
    await outsideUnchanged();
  });

  it('chmod and utimes: the file inside, refused through a link outside, no special bits', async () => {
    expect(await changeMode(jail, '/dir/a.txt', 0o640)).toEqual({ path: '/dir/a.txt', mode: 0o640 });
    expect((await stat(path.join(root, 'dir', 'a.txt'))).mode & 0o7777).toBe(0o640);
    await expect(changeMode(jail, '/dir/a.txt', 0o4755)).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
    await expect(changeMode(jail, '/secret-link', 0o666)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(changeMode(jail, '/out/secret.txt', 0o666)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(changeMode(jail, '/dir/up/outside/secret.txt', 0o666)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    const when = Date.UTC(2020, 1, 2, 3, 4, 5);
    expect(await changeTimes(jail, '/dir/sub', when, undefined)).toEqual({ path: '/dir/sub', mtimeMs: when });
    expect((await stat(path.join(root, 'dir', 'sub'))).mtimeMs).toBe(when);
    await expect(changeTimes(jail, '/secret-link', when, undefined)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(changeTimes(jail, '/dir', -1, undefined)).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
    const stats = await statPath(jail, '/dir/a.txt');
    expect(stats).toMatchObject({ path: '/dir/a.txt', type: 'file', size: 1, mode: 0o640, nlink: 1, uid: process.getuid?.() });
    await outsideUnchanged();
  });

  it('fs.hash of a prefix and a read resumed at an offset (the trailer covers the whole file)', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 5);
    await writeFile(path.join(root, 'big.bin'), data);
    const prefix = 1024 * 1024 + 3;
    expect(await hashPrefix(jail, '/big.bin', prefix, never)).toEqual({ size: data.length, length: prefix, sha256: sha(data.subarray(0, prefix)) });
    expect(await hashPrefix(jail, '/big.bin', data.length * 2, never)).toMatchObject({ length: data.length, sha256: sha(data) });
    await expect(hashPrefix(jail, '/dir', 1, never)).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(hashPrefix(jail, '/secret-link', 1, never)).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    const opened = await openForRead(backend, jail, '/big.bin');
    const chunks: Buffer[] = [];
    const result = await streamOpenedFile(opened, async (c) => void chunks.push(Buffer.from(c)), never, prefix);
    expect(Buffer.concat(chunks).equals(data.subarray(prefix))).toBe(true);
    expect(result.sha256).toBe(sha(data));
  });
});

/** Exchanges pairs of names in a tight loop until SIGTERM (see fs-race.test.ts). */
const ATTACKER = `
import ctypes, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
names = [a.encode() for a in sys.argv[1:]]
pairs = list(zip(names[0::2], names[1::2]))
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print('ready', flush=True)
while not stop:
    for a, b in pairs:
        if libc.renameat2(-100, a, -100, b, 2) != 0:
            sys.exit(3)
`;

describe('new file methods against a directory <-> symlink swap loop', () => {
  it('mkdir, rm -r, mv, chmod, utimes, hash never act outside the root', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'vmlink-manage-race-'));
    const root = path.join(base, 'root');
    const outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'd', 'tree'), { recursive: true });
    await mkdir(outside);
    // Files to act on inside, one per round, and their twins outside (what an escape would hit).
    for (let i = 0; i < 400; i += 1) await writeFile(path.join(root, 'd', `f${i}.txt`), 'inside');
    for (let i = 0; i < 400; i += 1) await writeFile(path.join(outside, `f${i}.txt`), 'secret');
    await writeFile(path.join(outside, 'f.txt'), 'secret');
    await chmod(path.join(outside, 'f.txt'), 0o600);
    await mkdir(path.join(outside, 'tree'));
    await writeFile(path.join(outside, 'tree', 'keep'), 'keep');
    // root/d is swapped with root/l (a symlink to outside) as fast as the kernel allows.
    await symlink(outside, path.join(root, 'l'));
    const before = await snapshot(outside);
    const jail = await RootJail.create(root);
    const attacker = spawn('python3', ['-c', ATTACKER, path.join(root, 'd'), path.join(root, 'l')], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => attacker.stdout.once('data', () => resolve()));
    const deadline = Date.now() + 5000;
    let calls = 0;
    try {
      while (Date.now() < deadline) {
        calls += 1;
        await Promise.allSettled([
          makeDirectory(jail, `/d/m${calls}`, 0o777, undefined),
          changeMode(jail, `/d/f${calls % 400}.txt`, 0o666),
          changeTimes(jail, `/d/f${(calls + 1) % 400}.txt`, 0, undefined),
          hashPrefix(jail, `/d/f${(calls + 2) % 400}.txt`, 100, never),
          movePath(jail, `/d/f${(calls + 3) % 400}.txt`, `/moved${calls}.txt`),
          removePath(jail, `/d/f${(calls + 4) % 400}.txt`, false, never),
          movePath(jail, '/d/tree', '/stolen-tree'),
          removePath(jail, '/d/tree', true, never),
        ]);
      }
    } finally {
      attacker.kill('SIGTERM');
      await new Promise((resolve) => attacker.once('exit', resolve));
      await jail.close();
    }
    expect(calls).toBeGreaterThan(10);
    expect(await snapshot(outside)).toEqual(before);
    await rm(base, { recursive: true, force: true });
  }, 60_000);
});
