import { constants as fsConstants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { AgentErrorCode, agentError } from '../errors.js';
import { systemError } from './client-errors.js';

/**
 * Path resolution beneath an open root directory, one component at a time, relative to
 * directory fds: the kernel never resolves more than one name, never follows a symlink
 * and never sees `..`. This is what closes the check-then-use race of issue 14: once a
 * directory is open, swapping its name for a symlink changes nothing for us.
 *
 * Node has no openat(); `/proc/self/fd/<dirfd>/<name>` is its equivalent. The magic link
 * `/proc/self/fd/<dirfd>` jumps straight to the directory the fd holds (no name is looked
 * up again), and only `<name>` is resolved in it; O_NOFOLLOW keeps that name from being
 * followed when it is a symlink.
 *
 * Symlinks met on the way are expanded by this code, not by the kernel: their text is
 * read (readlink of that one name) and walked the same way, `..` goes back to the
 * directory we came from (checked by device and inode), and anything that climbs above
 * the root or names a host path outside it is ERR_VMLINK_PATH_ESCAPE. At most
 * MAX_SYMLINKS expansions per path, like the kernel's own limit.
 */

/** O_PATH (Linux x86, arm, riscv, s390, ppc: 010000000); Node's fs.constants lacks it. */
export const O_PATH = 0o10000000;
const OPEN_DIRECTORY = fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW;
/** Same limit as the kernel's MAXSYMLINKS. */
export const MAX_SYMLINKS = 40;

/** `name` inside the directory open as `fd`, for any path-taking call (openat() emulation). */
export function at(fd: number, name: string): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/** The path that reopens what `fd` holds (the magic link itself). */
export function reopenPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** The root every walk starts from: an open directory and its real path (for absolute symlinks). */
export interface WalkRoot {
  readonly handle: FileHandle;
  readonly realRoot: string;
}

/**
 * `directory`: the whole path must be a directory (fs.list); `entry`: return the final
 * name in its parent, a symlink there is followed (fs.stat, fs.read); `create`: return the
 * final name in its parent, never followed (fs.write replaces it).
 */
export type WalkMode = 'directory' | 'entry' | 'create';

export interface WalkOptions {
  readonly mode: WalkMode;
  /** False: any symlink on the way is ELOOP (the temp-file sweep follows nothing). */
  readonly followSymlinks: boolean;
  /** The client's spelling of the path, for error messages. */
  readonly clientPath: string;
}

/** Where a walk ended: an open directory (owned by the caller: release() it) and maybe a name in it. */
export interface Walked {
  readonly dir: FileHandle;
  /** Undefined when the path named the directory itself. */
  readonly name: string | undefined;
  /** lstat of `name` as seen during the walk (mode 'entry' only). */
  readonly stats: Stats | undefined;
  /** The resolved path as the client sees it ('/' for the root), symlinks expanded. */
  readonly resolved: string;
  /** Closes `dir` unless it is the root's own handle. Safe to call twice. */
  release(): Promise<void>;
}

interface Level {
  readonly name: string;
  readonly dev: number;
  readonly ino: number;
}

/** Walks `segments` (already lexically cleaned: no '', '.', '..') beneath `root`. */
export async function walkBeneath(root: WalkRoot, segments: readonly string[], options: WalkOptions): Promise<Walked> {
  const levels: Level[] = [];
  let current = root.handle;
  const queue = [...segments];
  let expansions = 0;
  const closeCurrent = async (): Promise<void> => {
    if (current !== root.handle) await current.close().catch(() => undefined);
  };
  const resolved = (name?: string): string => `/${[...levels.map((l) => l.name), ...(name === undefined ? [] : [name])].join('/')}`;
  try {
    while (queue.length > 0) {
      const segment = queue.shift() as string;
      if (segment === '' || segment === '.') continue;
      if (segment === '..') {
        current = await climb(root, current, levels, options.clientPath);
        continue;
      }
      const last = queue.length === 0;
      if (last && options.mode === 'create') return await finish(root, current, segment, undefined, resolved(segment), options.clientPath);
      if (last && options.mode === 'entry') {
        const stats = await fsp.lstat(at(current.fd, segment));
        if (!stats.isSymbolicLink()) return await finish(root, current, segment, stats, resolved(segment), options.clientPath);
      } else {
        const next = await fsp.open(at(current.fd, segment), OPEN_DIRECTORY).catch(async (error: NodeJS.ErrnoException) => {
          // O_DIRECTORY|O_NOFOLLOW fails with ENOTDIR for a symlink and a non-directory alike.
          if (error.code !== 'ENOTDIR') throw error;
          const stats = await fsp.lstat(at(current.fd, segment));
          if (!stats.isSymbolicLink()) throw error;
          return undefined;
        });
        if (next) {
          const stats = await next.stat();
          await closeCurrent();
          current = next;
          levels.push({ name: segment, dev: stats.dev, ino: stats.ino });
          continue;
        }
      }
      // `segment` is a symlink in `current`.
      if (!options.followSymlinks) {
        throw systemError('ELOOP', 'open', options.clientPath, `'${options.clientPath}' has a symlink at '${resolved(segment)}' (symlinks are not followed here)`);
      }
      expansions += 1;
      if (expansions > MAX_SYMLINKS) {
        throw systemError('ELOOP', 'open', options.clientPath, `'${options.clientPath}': more than ${MAX_SYMLINKS} symlinks`);
      }
      const target = await fsp.readlink(at(current.fd, segment)).catch((error: NodeJS.ErrnoException) => {
        // No longer a symlink (renamed over since the lstat): look at the name again.
        if (error.code === 'EINVAL') return undefined;
        throw error;
      });
      if (target === undefined) {
        queue.unshift(segment);
        continue;
      }
      const expansion = expandTarget(target, root.realRoot, options.clientPath);
      if (expansion.fromRoot) {
        await closeCurrent();
        current = root.handle;
        levels.length = 0;
      }
      queue.unshift(...expansion.segments);
    }
    if (options.mode === 'create') {
      throw agentError(AgentErrorCode.INVALID_PATH, `cannot write to the root directory itself ('${options.clientPath}')`);
    }
    return await finish(root, current, undefined, undefined, resolved(), options.clientPath);
  } catch (error) {
    await closeCurrent();
    throw error;
  }
}

/** `..` from a symlink's text: reopen the parent and check it is the one we came through. */
async function climb(root: WalkRoot, current: FileHandle, levels: Level[], clientPath: string): Promise<FileHandle> {
  if (levels.length === 0) {
    throw agentError(AgentErrorCode.PATH_ESCAPE, `path '${clientPath}' leads through a symlink above the agent root`);
  }
  levels.pop();
  const expected = levels.at(-1);
  // Back at the root: its own fd, nothing to check.
  const parent = expected === undefined ? root.handle : await fsp.open(at(current.fd, '..'), OPEN_DIRECTORY);
  if (expected !== undefined) {
    const stats = await parent.stat().catch(async (error: unknown) => {
      await parent.close();
      throw error;
    });
    if (stats.dev !== expected.dev || stats.ino !== expected.ino) {
      await parent.close();
      throw agentError(AgentErrorCode.PATH_ESCAPE, `path '${clientPath}': a directory on the way was moved while being resolved`);
    }
  }
  if (current !== root.handle) await current.close().catch(() => undefined);
  return parent;
}

/**
 * The components to walk for a symlink's text. Relative text continues from the link's
 * directory; absolute text is a host path and must lie under the real root, spelled
 * without `..` before it gets there (anything else may be outside: refused).
 */
export function expandTarget(target: string, realRoot: string, clientPath: string): { fromRoot: boolean; segments: string[] } {
  const parts = target.split('/').filter((p) => p !== '' && p !== '.');
  if (!target.startsWith('/')) return { fromRoot: false, segments: parts };
  const rootParts = realRoot.split('/').filter((p) => p !== '');
  const prefixMatches = rootParts.every((part, i) => parts[i] === part);
  if (!prefixMatches) {
    // The link's text is a host path: not named, it would tell where the root lives.
    throw agentError(AgentErrorCode.PATH_ESCAPE, `path '${clientPath}' leads through a symlink outside the agent root`);
  }
  return { fromRoot: true, segments: parts.slice(rootParts.length) };
}

/**
 * Defence in depth: the directory we ended in must still be under the root. A directory
 * moved out (by someone who can write on both sides) after we opened it is refused.
 */
async function finish(root: WalkRoot, dir: FileHandle, name: string | undefined, stats: Stats | undefined, resolved: string, clientPath: string): Promise<Walked> {
  if (dir !== root.handle) {
    const where = await fsp.readlink(reopenPath(dir.fd));
    const inside = root.realRoot === '/' || where === root.realRoot || where.startsWith(`${root.realRoot}/`);
    if (!inside) throw agentError(AgentErrorCode.PATH_ESCAPE, `path '${clientPath}' resolves outside the agent root`);
  }
  return walked(root, dir, name, stats, resolved);
}

function walked(root: WalkRoot, dir: FileHandle, name: string | undefined, stats: Stats | undefined, resolved: string): Walked {
  let released = false;
  return {
    dir,
    name,
    stats,
    resolved,
    release: async () => {
      if (released || dir === root.handle) return;
      released = true;
      await dir.close().catch(() => undefined);
    },
  };
}
