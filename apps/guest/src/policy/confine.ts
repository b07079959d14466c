import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { AgentErrorCode, agentError } from '../errors.js';
import { reopenPath, walkBeneath, type WalkMode, type Walked } from '../fs/beneath.js';
import { forClient } from '../fs/client-errors.js';

export interface RootJailOptions {
  /**
   * Serve regular files with more than one hard link (`--allow-hardlinks`). Off by default:
   * a hard link made inside the root to a file outside it (same file system) would
   * otherwise make that file readable through the root.
   */
  readonly allowHardlinks?: boolean;
}

/**
 * Confinement of file methods to one directory, shown to clients as `/` (like a chroot):
 * the remote path `/etc/hosts` is `ROOT/etc/hosts`.
 *
 *  1. lexical: `..` segments that climb above `/` are refused, never clamped; NUL refused;
 *  2. the root is held open, and every path is resolved from that fd one component at a
 *     time, each opened with O_NOFOLLOW relative to its parent's fd (fs/beneath.ts); the
 *     methods then act on the final name relative to its parent's fd. Nothing is looked
 *     up by full path twice, so swapping a directory for a symlink mid-request cannot
 *     lead outside (the time-of-check race of issue 14);
 *  3. symlinks inside the root are followed by this walk, not by the kernel: a symlink
 *     whose text leads above the root, or to a host path outside it, is refused.
 */
export class RootJail {
  private constructor(
    /** The real (symlink-free) absolute path of the root. */
    readonly realRoot: string,
    /** The root directory, open for the agent's lifetime: every walk starts here. */
    readonly handle: FileHandle,
    readonly allowHardlinks: boolean,
  ) {}

  static async create(root: string, options: RootJailOptions = {}): Promise<RootJail> {
    const realRoot = await fsp.realpath(root);
    const handle = await fsp.open(realRoot, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOTDIR') throw agentError(AgentErrorCode.INVALID_PATH, `--root ${root} is not a directory`);
      throw error;
    });
    // Every path is opened through /proc/self/fd/N (Node has no openat): without /proc
    // each call would fail with a puzzling ENOENT, so refuse to start instead.
    const seen = await fsp.readlink(reopenPath(handle.fd)).catch(() => undefined);
    if (seen === undefined) {
      await handle.close();
      throw agentError(AgentErrorCode.FS_DISABLED, `--root ${root}: file methods need /proc mounted (paths are opened relative to directory fds through /proc/self/fd)`);
    }
    return new RootJail(realRoot, handle, options.allowHardlinks ?? false);
  }

  /** Closes the root fd (tests; the agent keeps its jail for its whole life). */
  async close(): Promise<void> {
    await this.handle.close();
  }

  /**
   * Resolves a client path beneath the root (see fs/beneath.ts for the modes). The result
   * holds an open directory fd: the caller must `release()` it. Errors name `remotePath`.
   */
  async walk(remotePath: unknown, mode: WalkMode): Promise<Walked> {
    const segments = splitRemotePath(remotePath);
    const clientPath = remotePath as string;
    try {
      return await walkBeneath({ handle: this.handle, realRoot: this.realRoot }, segments, { mode, followSymlinks: true, clientPath });
    } catch (error) {
      throw forClient(error, clientPath);
    }
  }
}

/** O_NOFOLLOW on the last component: a symlink there fails with ELOOP instead of being followed. */
export const OPEN_CREATE_EXCLUSIVE =
  fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/**
 * Splits a remote path into safe segments: '' and '.' dropped, '..' pops, and popping
 * above the root is an escape. Pure, so it is unit-tested on its own.
 */
export function splitRemotePath(remotePath: unknown): string[] {
  if (typeof remotePath !== 'string' || remotePath.length === 0) {
    throw agentError(AgentErrorCode.INVALID_PATH, `path must be a non-empty string, got ${describe(remotePath)}`);
  }
  if (remotePath.includes('\0')) {
    throw agentError(AgentErrorCode.INVALID_PATH, `path must not contain NUL bytes: '${remotePath.replace(/\0/g, '\\0')}'`);
  }
  const out: string[] = [];
  for (const segment of remotePath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.pop() === undefined) {
        throw agentError(AgentErrorCode.PATH_ESCAPE, `path '${remotePath}' climbs above the agent root`);
      }
      continue;
    }
    out.push(segment);
  }
  return out;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `''` : typeof value;
}
