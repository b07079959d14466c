import { constants as fsConstants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { AgentErrorCode, agentError } from '../errors.js';

/**
 * Confinement of file methods to one directory, shown to clients as `/` (like a chroot):
 * the remote path `/etc/hosts` is `ROOT/etc/hosts`.
 *
 * Three checks, each closing a different hole:
 *  1. lexical: `..` segments that climb above `/` are refused, never clamped;
 *  2. symlinks: the deepest existing ancestor is realpath'd and must stay under ROOT;
 *  3. after open: `/proc/self/fd/N` names what was really opened, which defeats a symlink
 *     swapped in between the check and the open (the time-of-check race).
 */
export class RootJail {
  private constructor(
    /** The real (symlink-free) absolute path of the root. */
    readonly realRoot: string,
  ) {}

  static async create(root: string): Promise<RootJail> {
    const realRoot = await fsp.realpath(root);
    const stats = await fsp.stat(realRoot);
    if (!stats.isDirectory()) {
      throw agentError(AgentErrorCode.INVALID_PATH, `--root ${root} is not a directory`);
    }
    return new RootJail(realRoot);
  }

  /** The host path of a remote path, after the lexical check only. */
  lexical(remotePath: unknown): string {
    const segments = splitRemotePath(remotePath);
    return segments.length === 0 ? this.realRoot : path.join(this.realRoot, ...segments);
  }

  /** Resolves an existing path (following symlinks) and refuses anything outside the root. */
  async resolveExisting(remotePath: unknown): Promise<string> {
    const candidate = this.lexical(remotePath);
    const real = await fsp.realpath(candidate);
    this.assertInside(real, remotePath);
    return real;
  }

  /**
   * Resolves the parent directory of a path that may not exist yet (for writes); returns
   * the real parent and the final name. The final name itself is never followed.
   */
  async resolveForCreate(remotePath: unknown): Promise<{ dir: string; name: string; target: string }> {
    const segments = splitRemotePath(remotePath);
    const name = segments.at(-1);
    if (name === undefined) {
      throw agentError(AgentErrorCode.INVALID_PATH, `cannot write to the root directory itself ('${String(remotePath)}')`);
    }
    const dir = await fsp.realpath(path.join(this.realRoot, ...segments.slice(0, -1)));
    this.assertInside(dir, remotePath);
    return { dir, name, target: path.join(dir, name) };
  }

  /** Re-checks an open fd: what the kernel actually opened must be under the root. */
  async assertFdInside(fd: number, remotePath: unknown): Promise<void> {
    const opened = await fsp.readlink(`/proc/self/fd/${fd}`);
    this.assertInside(opened, remotePath);
  }

  /** The remote (client-visible) form of a real path under the root. */
  toRemote(realPath: string): string {
    const rel = path.relative(this.realRoot, realPath);
    return rel === '' ? '/' : `/${rel.split(path.sep).join('/')}`;
  }

  isInside(realPath: string): boolean {
    return realPath === this.realRoot || realPath.startsWith(this.realRoot === '/' ? '/' : `${this.realRoot}/`);
  }

  private assertInside(realPath: string, remotePath: unknown): void {
    if (!this.isInside(realPath)) {
      throw agentError(AgentErrorCode.PATH_ESCAPE, `path '${String(remotePath)}' resolves outside the agent root`);
    }
  }
}

/** O_NOFOLLOW on the last component: a symlink there fails with ELOOP instead of being followed. */
export const OPEN_READ_NOFOLLOW = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;
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
