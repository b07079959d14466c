import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBackend, type AioBackend } from '@vmlink/aio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDirectory, readFileStreamed, statPath, sweepStaleTempFiles, tempNameFor, writeFileAtomic } from '../src/methods/files.js';
import { RootJail } from '../src/policy/confine.js';

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

async function* chunks(data: Uint8Array, size: number, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length; offset += size) {
    if (failAfter !== undefined && offset >= failAfter) throw Object.assign(new Error('client vanished'), { code: 'ECONNRESET' });
    yield data.subarray(offset, offset + size);
  }
}

describe.each(['fs', 'threadpool', 'iosubmit'] as const)('file methods over the %s AIO backend and real files', (backendName) => {
  let base: string;
  let root: string;
  let jail: RootJail;
  let backend: AioBackend;
  const signal = new AbortController().signal;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-files-'));
    root = path.join(base, 'root');
    await mkdir(path.join(root, 'sub'), { recursive: true });
    await writeFile(path.join(base, 'outside.txt'), 'secret');
    await symlink(path.join(base, 'outside.txt'), path.join(root, 'sub', 'leak'));
    jail = await RootJail.create(root);
    backend = await createBackend(backendName);
  });
  afterAll(async () => {
    await backend.close();
    await jail.close();
    await rm(base, { recursive: true, force: true });
  });

  it('writes atomically, then reads back the same bytes and SHA-256', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const written = await writeFileAtomic(backend, jail, '/sub/data.bin', chunks(data, 300_000), {
      expectedSha256: sha(data), maxBytes: 1 << 30, signal,
    });
    expect(written).toEqual({ size: data.length, sha256: sha(data) });
    const received: Uint8Array[] = [];
    const read = await readFileStreamed(backend, jail, '/sub/data.bin', async (c) => { received.push(Buffer.from(c)); }, signal);
    expect(read).toEqual(written);
    expect(Buffer.concat(received).equals(data)).toBe(true);
    expect(await statPath(jail, 'sub/data.bin')).toMatchObject({ path: '/sub/data.bin', type: 'file', size: data.length });
  });

  it('leaves neither the target nor a temp file when the source fails mid-way', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    await expect(
      writeFileAtomic(backend, jail, '/sub/half.bin', chunks(data, 256 * 1024, 1024 * 1024), { maxBytes: 1 << 30, signal }),
    ).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect((await readdir(path.join(root, 'sub'))).filter((n) => n.includes('half'))).toEqual([]);
  });

  it('discards a file whose checksum does not match, keeping the old content', async () => {
    await writeFile(path.join(root, 'sub', 'keep.txt'), 'old');
    await expect(
      writeFileAtomic(backend, jail, '/sub/keep.txt', chunks(Buffer.from('new content'), 4), { expectedSha256: sha(Buffer.from('other')), maxBytes: 100, signal }),
    ).rejects.toMatchObject({ code: 'ERR_VMLINK_CHECKSUM_MISMATCH' });
    expect(await readFile(path.join(root, 'sub', 'keep.txt'), 'utf8')).toBe('old');
    expect((await readdir(path.join(root, 'sub'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses more than maxBytes and cleans up', async () => {
    await expect(
      writeFileAtomic(backend, jail, '/sub/big.bin', chunks(randomBytes(5000), 1000), { maxBytes: 4096, signal }),
    ).rejects.toMatchObject({ code: 'ERR_VMLINK_REQUEST_TOO_LARGE' });
    expect((await readdir(path.join(root, 'sub'))).filter((n) => n.includes('big'))).toEqual([]);
  });

  it('replaces a symlink at the target instead of writing through it', async () => {
    await writeFileAtomic(backend, jail, '/sub/leak', chunks(Buffer.from('mine'), 4), { maxBytes: 100, signal });
    expect(await readFile(path.join(base, 'outside.txt'), 'utf8')).toBe('secret');
    expect(await readFile(path.join(root, 'sub', 'leak'), 'utf8')).toBe('mine');
  });

  it('refuses escapes for every method', async () => {
    await symlink(base, path.join(root, 'up'));
    const escape = { code: 'ERR_VMLINK_PATH_ESCAPE' };
    await expect(statPath(jail, '/up/outside.txt')).rejects.toMatchObject(escape);
    await expect(listDirectory(jail, '/../', 10)).rejects.toMatchObject(escape);
    await expect(readFileStreamed(backend, jail, '/up/outside.txt', async () => {}, signal)).rejects.toMatchObject(escape);
    await expect(writeFileAtomic(backend, jail, '/up/x', chunks(Buffer.from('x'), 1), { maxBytes: 10, signal })).rejects.toMatchObject(escape);
  });

  it('follows symlinks that stay inside the root, and reports the resolved path', async () => {
    await mkdir(path.join(root, 'real', 'nested'), { recursive: true });
    await writeFile(path.join(root, 'real', 'nested', 'f.txt'), 'via link');
    await symlink('real/nested', path.join(root, 'rel-link'));
    await symlink(path.join(await realpath(root), 'real'), path.join(root, 'abs-link'));
    const received: Buffer[] = [];
    await readFileStreamed(backend, jail, '/rel-link/f.txt', async (c) => { received.push(Buffer.from(c)); }, signal);
    expect(Buffer.concat(received).toString()).toBe('via link');
    expect(await statPath(jail, '/abs-link/nested/f.txt')).toMatchObject({ path: '/real/nested/f.txt', type: 'file', size: 8 });
    expect(await listDirectory(jail, '/abs-link/nested', 10)).toMatchObject({ path: '/real/nested', entries: [{ name: 'f.txt', type: 'file' }] });
    // The parent is followed; the final name of a write is replaced, never followed.
    await writeFileAtomic(backend, jail, '/rel-link/g.txt', chunks(Buffer.from('new'), 3), { maxBytes: 10, signal });
    expect(await readFile(path.join(root, 'real', 'nested', 'g.txt'), 'utf8')).toBe('new');
    expect((await listDirectory(jail, '/', 100)).entries.find((e) => e.name === 'rel-link')).toMatchObject({ type: 'symlink' });
    await rm(path.join(root, 'rel-link'));
    await rm(path.join(root, 'abs-link'));
    await rm(path.join(root, 'real'), { recursive: true });
  });

  it('lists a directory sorted, symlinks shown as symlinks, bounded', async () => {
    const listing = await listDirectory(jail, '/sub', 1000);
    expect(listing.path).toBe('/sub');
    expect(listing.entries.map((e) => e.name)).toEqual([...listing.entries.map((e) => e.name)].sort());
    expect(listing.truncated).toBe(false);
    const small = await listDirectory(jail, '/sub', 1);
    expect(small).toMatchObject({ truncated: true, entries: [expect.any(Object)] });
  });

  it('sweeps temp files of dead writers only', async () => {
    const dead = path.join(root, 'sub', tempNameFor('x.bin', 2 ** 22 + 12345)); // above pid_max's default: never alive
    const mine = path.join(root, 'sub', tempNameFor('y.bin'));
    const lookalike = path.join(root, 'sub', '.z.vmlink-notapid.tmp');
    for (const f of [dead, mine, lookalike]) await writeFile(f, 'partial');
    expect(await sweepStaleTempFiles(root)).toEqual([dead]);
    const names = await readdir(path.join(root, 'sub'));
    expect(names).toContain(path.basename(mine));
    expect(names).toContain(path.basename(lookalike));
  });
});
