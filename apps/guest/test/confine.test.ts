import { mkdtemp, mkdir, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootJail, splitRemotePath } from '../src/policy/confine.js';

describe('splitRemotePath (pure)', () => {
  it('treats absolute and relative paths alike, under the root', () => {
    expect(splitRemotePath('/etc/hosts')).toEqual(['etc', 'hosts']);
    expect(splitRemotePath('etc//hosts/')).toEqual(['etc', 'hosts']);
    expect(splitRemotePath('/')).toEqual([]);
    expect(splitRemotePath('./a/./b')).toEqual(['a', 'b']);
  });

  it('lets .. climb inside the root but never above it', () => {
    expect(splitRemotePath('/a/b/../c')).toEqual(['a', 'c']);
    expect(() => splitRemotePath('/..')).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_PATH_ESCAPE' }));
    expect(() => splitRemotePath('a/../../etc/passwd')).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_PATH_ESCAPE', message: expect.stringContaining('a/../../etc/passwd') }),
    );
  });

  it('rejects non-strings, empty strings and NUL bytes with ERR_VMLINK_INVALID_PATH', () => {
    for (const bad of ['', 'a\0b', 42, undefined, null]) {
      expect(() => splitRemotePath(bad)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_PATH' }));
    }
  });
});

describe('RootJail.walk (real files and symlinks, fd-relative)', () => {
  let base: string;
  let root: string;
  let jail: RootJail;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-jail-'));
    root = path.join(base, 'root');
    await mkdir(path.join(root, 'dir', 'sub'), { recursive: true });
    await writeFile(path.join(root, 'dir', 'file.txt'), 'inside');
    await writeFile(path.join(base, 'secret.txt'), 'outside');
    await symlink(path.join(base, 'secret.txt'), path.join(root, 'escape-file'));
    await symlink(base, path.join(root, 'escape-dir'));
    await symlink('dir/file.txt', path.join(root, 'inner-link'));
    await symlink('../file.txt', path.join(root, 'dir', 'sub', 'up-link'));
    await symlink('../../..', path.join(root, 'dir', 'sub', 'climb-out'));
    await symlink(path.join(root, 'dir'), path.join(root, 'absolute-inside'));
    await symlink('loop-b', path.join(root, 'loop-a'));
    await symlink('loop-a', path.join(root, 'loop-b'));
    jail = await RootJail.create(root);
  });
  afterAll(async () => {
    await jail.close();
    await rm(base, { recursive: true, force: true });
  });

  async function resolved(remote: string, mode: 'directory' | 'entry' | 'create'): Promise<{ resolved: string; name: string | undefined }> {
    const walked = await jail.walk(remote, mode);
    try {
      return { resolved: walked.resolved, name: walked.name };
    } finally {
      await walked.release();
    }
  }

  it('resolves paths under the root, following symlinks that stay inside (relative, .., absolute)', async () => {
    expect(jail.realRoot).toBe(await realpath(root));
    expect(await resolved('/dir/file.txt', 'entry')).toEqual({ resolved: '/dir/file.txt', name: 'file.txt' });
    expect(await resolved('/inner-link', 'entry')).toEqual({ resolved: '/dir/file.txt', name: 'file.txt' });
    expect(await resolved('/dir/sub/up-link', 'entry')).toEqual({ resolved: '/dir/file.txt', name: 'file.txt' });
    expect(await resolved('/absolute-inside/sub', 'directory')).toEqual({ resolved: '/dir/sub', name: undefined });
    expect(await resolved('/', 'directory')).toEqual({ resolved: '/', name: undefined });
  });

  it('refuses symlinks that lead outside, for every mode, without naming the host path', async () => {
    for (const [remote, mode] of [
      ['/escape-file', 'entry'],
      ['/escape-dir/secret.txt', 'entry'],
      ['/escape-dir', 'directory'],
      ['/escape-dir/new.txt', 'create'],
      ['/dir/sub/climb-out/secret.txt', 'entry'],
    ] as const) {
      const error = await jail.walk(remote, mode).then(() => undefined, (e: Error & { code?: string }) => e);
      expect(error, remote).toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE', message: expect.stringContaining(remote) });
      expect(error?.message).not.toContain(base);
    }
  });

  it('never follows the final name of a create, and refuses the root itself', async () => {
    expect(await resolved('/escape-file', 'create')).toEqual({ resolved: '/escape-file', name: 'escape-file' });
    await expect(jail.walk('/', 'create')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PATH' });
  });

  it('answers ENOENT, ENOTDIR and ELOOP with the client path, not the real one', async () => {
    const cases = [
      ['/missing/new.txt', 'create', 'ENOENT'],
      ['/nope', 'entry', 'ENOENT'],
      ['/dir/file.txt/x', 'entry', 'ENOTDIR'],
      ['/dir/file.txt', 'directory', 'ENOTDIR'],
      ['/loop-a', 'entry', 'ELOOP'],
    ] as const;
    for (const [remote, mode, code] of cases) {
      const error = await jail.walk(remote, mode).then(() => undefined, (e: Error & { code?: string; path?: string }) => e);
      expect(error, remote).toMatchObject({ code, message: expect.stringContaining(`'${remote}'`) });
      expect(error?.message).not.toContain(root);
      expect(error?.message).not.toContain('/proc/self/fd');
    }
  });

  it('leaves no fd open after walks, failed or not', async () => {
    const before = await openFdCount();
    for (let i = 0; i < 20; i += 1) {
      await resolved('/inner-link', 'entry');
      await resolved('/dir/sub', 'directory');
      await jail.walk('/escape-dir/secret.txt', 'entry').catch(() => undefined);
      await jail.walk('/loop-a', 'entry').catch(() => undefined);
      await jail.walk('/dir/file.txt/x', 'entry').catch(() => undefined);
    }
    expect(await openFdCount()).toBe(before);
  });

  it('refuses a root that is not a directory, and defaults to refusing hard links', async () => {
    await expect(RootJail.create(path.join(root, 'dir', 'file.txt'))).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PATH' });
    expect(jail.allowHardlinks).toBe(false);
    const allowing = await RootJail.create(root, { allowHardlinks: true });
    expect(allowing.allowHardlinks).toBe(true);
    await allowing.close();
  });
});

async function openFdCount(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}
