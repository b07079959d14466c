import { mkdtemp, mkdir, rm, symlink, writeFile, open } from 'node:fs/promises';
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

describe('RootJail (real files and symlinks)', () => {
  let base: string;
  let root: string;
  let jail: RootJail;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-jail-'));
    root = path.join(base, 'root');
    await mkdir(path.join(root, 'dir'), { recursive: true });
    await writeFile(path.join(root, 'dir', 'file.txt'), 'inside');
    await writeFile(path.join(base, 'secret.txt'), 'outside');
    await symlink(path.join(base, 'secret.txt'), path.join(root, 'escape-file'));
    await symlink(base, path.join(root, 'escape-dir'));
    await symlink('dir/file.txt', path.join(root, 'inner-link'));
    jail = await RootJail.create(root);
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('resolves files under the root and maps them back to remote paths', async () => {
    const real = await jail.resolveExisting('/dir/file.txt');
    expect(real).toBe(path.join(jail.realRoot, 'dir', 'file.txt'));
    expect(jail.toRemote(real)).toBe('/dir/file.txt');
    expect(await jail.resolveExisting('/inner-link')).toBe(real);
  });

  it('rejects a symlink that points outside, for files and directories', async () => {
    await expect(jail.resolveExisting('/escape-file')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(jail.resolveExisting('/escape-dir/secret.txt')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(jail.resolveForCreate('/escape-dir/new.txt')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
  });

  it('resolves the parent of a new file and refuses the root itself', async () => {
    const where = await jail.resolveForCreate('/dir/new.txt');
    expect(where).toEqual({ dir: path.join(jail.realRoot, 'dir'), name: 'new.txt', target: path.join(jail.realRoot, 'dir', 'new.txt') });
    await expect(jail.resolveForCreate('/')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PATH' });
    await expect(jail.resolveForCreate('/missing/new.txt')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('checks what an fd really opened (the time-of-check race)', async () => {
    const inside = await open(path.join(root, 'dir', 'file.txt'));
    const outside = await open(path.join(base, 'secret.txt'));
    try {
      await expect(jail.assertFdInside(inside.fd, '/dir/file.txt')).resolves.toBeUndefined();
      await expect(jail.assertFdInside(outside.fd, '/dir/file.txt')).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    } finally {
      await inside.close();
      await outside.close();
    }
  });

  it('does not mistake a sibling with the same prefix for the inside', () => {
    expect(jail.isInside(`${jail.realRoot}-sibling/x`)).toBe(false);
    expect(jail.isInside(jail.realRoot)).toBe(true);
  });
});
