import { constants as fsConstants } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandTarget, walkBeneath, type WalkRoot } from '../src/fs/beneath.js';

describe('expandTarget (pure)', () => {
  it('continues relative text from the link, keeping .. for the walk to check', () => {
    expect(expandTarget('a/./b/../c', '/srv/root', '/x')).toEqual({ fromRoot: false, segments: ['a', 'b', '..', 'c'] });
  });

  it('takes absolute text as a host path that must lie under the real root', () => {
    expect(expandTarget('/srv/root/etc//hosts', '/srv/root', '/x')).toEqual({ fromRoot: true, segments: ['etc', 'hosts'] });
    expect(expandTarget('/srv/root', '/srv/root', '/x')).toEqual({ fromRoot: true, segments: [] });
    expect(expandTarget('/etc/hosts', '/', '/x')).toEqual({ fromRoot: true, segments: ['etc', 'hosts'] });
    for (const outside of ['/srv/rootless/x', '/srv', '/etc/passwd', '/srv/other/../root/x']) {
      expect(() => expandTarget(outside, '/srv/root', '/x'), outside).toThrow(
        expect.objectContaining({ code: 'ERR_VMLINK_PATH_ESCAPE', message: expect.not.stringContaining(outside) }),
      );
    }
  });
});

describe('walkBeneath on real directories', () => {
  let base: string;
  let root: WalkRoot;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-beneath-'));
    await mkdir(path.join(base, 'root', 'a', 'b'), { recursive: true });
    await symlink('a', path.join(base, 'root', 'link'));
    root = { handle: await open(path.join(base, 'root'), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY), realRoot: path.join(base, 'root') };
  });
  afterAll(async () => {
    await root.handle.close();
    await rm(base, { recursive: true, force: true });
  });

  it('follows nothing when asked not to (the sweep): a symlink on the way is ELOOP', async () => {
    await expect(walkBeneath(root, ['link', 'b'], { mode: 'directory', followSymlinks: false, clientPath: 'link/b' })).rejects.toMatchObject({
      code: 'ELOOP',
      message: expect.stringContaining("'/link'"),
    });
    const walked = await walkBeneath(root, ['link', 'b'], { mode: 'directory', followSymlinks: true, clientPath: '/link/b' });
    expect(walked.resolved).toBe('/a/b');
    await walked.release();
  });

  it('refuses to end in a directory that is no longer under the root (moved out after it was opened)', async () => {
    // The same fds, but the root's real path says the walked directory now lies elsewhere:
    // what a directory moved out from under the walk looks like.
    const moved: WalkRoot = { handle: root.handle, realRoot: path.join(base, 'elsewhere') };
    await expect(walkBeneath(moved, ['a', 'b'], { mode: 'directory', followSymlinks: true, clientPath: '/a/b' })).rejects.toMatchObject({
      code: 'ERR_VMLINK_PATH_ESCAPE',
    });
  });

  it('keeps working on the directory it opened when that directory is renamed (fd, not name)', async () => {
    const walked = await walkBeneath(root, ['a', 'b'], { mode: 'directory', followSymlinks: true, clientPath: '/a/b' });
    try {
      await rename(path.join(base, 'root', 'a'), path.join(base, 'root', 'a2'));
      expect(await readdir(`/proc/self/fd/${walked.dir.fd}/..`)).toEqual(['b']);
    } finally {
      await walked.release();
      await rename(path.join(base, 'root', 'a2'), path.join(base, 'root', 'a'));
    }
  });
});
