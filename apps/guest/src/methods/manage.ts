import { createHash } from 'node:crypto';
import { constants as fsConstants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import {
  MAX_CLIENT_MODE,
  type ChmodResult,
  type HashResult,
  type MkdirResult,
  type MvResult,
  type RmResult,
  type UtimesResult,
} from '@vmlink/agent-protocol';
import { throwIfAborted } from '@vmlink/errors';
import { AgentErrorCode, agentError } from '../errors.js';
import { at, O_PATH, reopenPath, type Walked } from '../fs/beneath.js';
import { forClient, systemError } from '../fs/client-errors.js';
import { splitRemotePath, type RootJail } from '../policy/confine.js';
import { describeValue } from '../policy/exec-policy.js';

/**
 * File management beneath the root: mkdir, rm, mv, chmod, utimes, and the prefix hash of
 * cp --resume. Every path goes through the jail's walk (fs/beneath.ts): the final name is
 * acted on relative to its parent's directory fd, and a name is never handed to a call
 * that would follow a symlink there. Metadata changes (chmod, utimes) go through an
 * O_PATH|O_NOFOLLOW fd of the very inode that was checked, never by name again.
 */

const OPEN_DIRECTORY_NOFOLLOW = fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW;
/** rm -r goes no deeper than this (the kernel's own PATH_MAX allows ~2048 levels of 1-byte names). */
export const MAX_REMOVE_DEPTH = 256;
const HASH_CHUNK = 1024 * 1024;

export function checkMode(value: unknown, method: string, required: boolean): number | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_CLIENT_MODE) {
    throw agentError(
      AgentErrorCode.INVALID_PARAMS,
      `${method}: mode must be an integer in 0..0o777 (no setuid, setgid or sticky bits from a client), got ${describeValue(value)}`,
    );
  }
  return value;
}

function checkTime(value: unknown, name: string, method: string): number {
  // Up to year 9999: enough, and far from the range where Date loses integer milliseconds.
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 253_402_300_799_000) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `${method}: ${name} must be milliseconds since 1970 (a number >= 0), got ${describeValue(value)}`);
  }
  return value;
}

/** The root itself is never removed or moved: refused by its own code, before any walk. */
function refuseRoot(remotePath: unknown, method: string): void {
  if (splitRemotePath(remotePath).length === 0) {
    throw agentError(AgentErrorCode.ROOT_PROTECTED, `${method}: '${remotePath as string}' is the root directory the agent serves; refused`);
  }
}

/** Runs `work` on the walk's result, labelling errors with the client's path, releasing the walk. */
async function within<T>(jail: RootJail, remotePath: unknown, mode: 'entry' | 'create' | 'directory', work: (walked: Walked, clientPath: string) => Promise<T>): Promise<T> {
  const walked = await jail.walk(remotePath, mode);
  const clientPath = remotePath as string;
  try {
    return await work(walked, clientPath);
  } catch (error) {
    throw forClient(error, clientPath);
  } finally {
    await walked.release();
  }
}

/** fs.mkdir: one directory, or with `parents` every missing one on the way (an existing directory is fine then). */
export async function makeDirectory(jail: RootJail, remotePath: unknown, rawMode: unknown, parents: unknown): Promise<MkdirResult> {
  const mode = checkMode(rawMode, 'fs.mkdir', false) ?? 0o755;
  if (parents !== undefined && typeof parents !== 'boolean') {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.mkdir: parents must be a boolean, got ${describeValue(parents)}`);
  }
  const segments = splitRemotePath(remotePath);
  if (segments.length === 0) {
    if (parents) return { path: '/', created: false };
    throw systemError('EEXIST', 'mkdir', remotePath as string, `fs.mkdir: '${remotePath as string}' is the root directory, it exists`);
  }
  if (!parents) return { path: `/${segments.join('/')}`, created: await mkdirOne(jail, remotePath as string, `/${segments.join('/')}`, mode, false) };
  let created = false;
  for (let i = 1; i <= segments.length; i += 1) {
    created = await mkdirOne(jail, remotePath as string, `/${segments.slice(0, i).join('/')}`, mode, true);
  }
  return { path: `/${segments.join('/')}`, created };
}

async function mkdirOne(jail: RootJail, clientPath: string, prefix: string, mode: number, existingOk: boolean): Promise<boolean> {
  const walked = await jail.walk(prefix, 'create');
  try {
    await fsp.mkdir(at(walked.dir.fd, walked.name as string), { mode });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST' && existingOk) {
      // Only a directory will do (a symlink to one inside the root too; one leading out is refused by the walk).
      const existing = await jail.walk(prefix, 'directory').catch((walkError: unknown) => {
        if ((walkError as { code?: unknown }).code === 'ENOTDIR') {
          throw systemError('ENOTDIR', 'mkdir', clientPath, `fs.mkdir: '${prefix}' exists and is not a directory`);
        }
        throw walkError;
      });
      await existing.release();
      return false;
    }
    throw forClient(error, clientPath);
  } finally {
    await walked.release();
  }
}

/**
 * fs.rm: a file, a symlink (the link, never its target) or, with `recursive`, a directory
 * tree. A directory without `recursive` is EISDIR. The root is ERR_VMLINK_ROOT_PROTECTED.
 * A tree is removed through directory fds opened O_NOFOLLOW one level at a time: a
 * symlink inside it is unlinked, never descended into.
 */
export async function removePath(jail: RootJail, remotePath: unknown, recursive: unknown, signal: AbortSignal): Promise<RmResult> {
  if (recursive !== undefined && typeof recursive !== 'boolean') {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.rm: recursive must be a boolean, got ${describeValue(recursive)}`);
  }
  refuseRoot(remotePath, 'fs.rm');
  return within(jail, remotePath, 'create', async (walked, clientPath) => {
    const name = walked.name as string;
    const stats = await fsp.lstat(at(walked.dir.fd, name));
    if (!stats.isDirectory()) {
      await fsp.unlink(at(walked.dir.fd, name));
      return { path: walked.resolved, removed: 1 };
    }
    if (!recursive) throw systemError('EISDIR', 'rm', clientPath, `fs.rm: '${clientPath}' is a directory (remove it with recursive)`);
    const removed = await removeTree(walked.dir, name, 0, clientPath, signal);
    return { path: walked.resolved, removed };
  });
}

async function removeTree(parent: FileHandle, name: string, depth: number, clientPath: string, signal: AbortSignal): Promise<number> {
  throwIfAborted(signal);
  if (depth >= MAX_REMOVE_DEPTH) throw systemError('ELOOP', 'rm', clientPath, `fs.rm: '${clientPath}' is nested deeper than ${MAX_REMOVE_DEPTH} levels; refused`);
  let removed = 0;
  const dir = await fsp.open(at(parent.fd, name), OPEN_DIRECTORY_NOFOLLOW);
  try {
    // Read names in batches and remove them: the listing never holds a huge directory at once.
    for (;;) {
      const names = await readSomeNames(dir, 1000);
      if (names.length === 0) break;
      for (const entry of names) {
        throwIfAborted(signal);
        const stats = await fsp.lstat(at(dir.fd, entry)).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined; // gone meanwhile
          throw error;
        });
        if (!stats) continue;
        if (stats.isDirectory()) removed += await removeTree(dir, entry, depth + 1, clientPath, signal);
        else {
          await fsp.unlink(at(dir.fd, entry)).catch(ignoreEnoent);
          removed += 1;
        }
      }
    }
  } finally {
    await dir.close().catch(() => undefined);
  }
  await fsp.rmdir(at(parent.fd, name));
  return removed + 1;
}

async function readSomeNames(dir: FileHandle, max: number): Promise<string[]> {
  const handle = await fsp.opendir(reopenPath(dir.fd));
  const names: string[] = [];
  try {
    for await (const dirent of handle) {
      names.push(dirent.name);
      if (names.length >= max) break;
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  return names;
}

function ignoreEnoent(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}

/**
 * fs.mv: rename(2) from one name to another, both resolved beneath the root, the final
 * names never followed (a symlink is moved as a link). The root cannot be moved, and
 * nothing can be moved out: both parents are directory fds inside the root.
 */
export async function movePath(jail: RootJail, from: unknown, to: unknown): Promise<MvResult> {
  refuseRoot(from, 'fs.mv');
  if (splitRemotePath(to).length === 0) {
    throw agentError(AgentErrorCode.ROOT_PROTECTED, `fs.mv: cannot replace the root directory ('${to as string}')`);
  }
  return within(jail, from, 'create', async (source, fromPath) => {
    await fsp.lstat(at(source.dir.fd, source.name as string)).catch((error: unknown) => {
      throw forClient(error, fromPath);
    });
    return within(jail, to, 'create', async (target) => {
      await fsp.rename(at(source.dir.fd, source.name as string), at(target.dir.fd, target.name as string));
      return { from: source.resolved, to: target.resolved };
    });
  });
}

/**
 * The inode at the end of the walk, held as an O_PATH|O_NOFOLLOW fd and checked by fstat:
 * what chmod/utimes then change through /proc/self/fd/N is that inode, whatever the name
 * points to by then. The root itself has no name: its own directory fd is used.
 */
async function withInode<T>(jail: RootJail, remotePath: unknown, work: (target: string, stats: Stats, resolved: string) => Promise<T>): Promise<T> {
  return within(jail, remotePath, 'entry', async (walked, clientPath) => {
    if (walked.name === undefined) return work(reopenPath(walked.dir.fd), await walked.dir.stat(), walked.resolved);
    const probe = await fsp.open(at(walked.dir.fd, walked.name), O_PATH | fsConstants.O_NOFOLLOW);
    try {
      const stats = await probe.stat();
      if (stats.isSymbolicLink()) {
        throw agentError(AgentErrorCode.FILE_CHANGED, `'${clientPath}' changed into a symlink while being resolved`);
      }
      if (stats.isFile() && stats.nlink > 1 && !jail.allowHardlinks) {
        throw agentError(AgentErrorCode.PATH_ESCAPE, `'${clientPath}' has ${stats.nlink} hard links; one may be outside the agent root, so it is refused (--allow-hardlinks serves it)`);
      }
      return await work(reopenPath(probe.fd), stats, walked.resolved);
    } finally {
      await probe.close();
    }
  });
}

/** fs.chmod: permission bits 0..0o777 on the file or directory (a symlink on the way is followed inside the root). */
export async function changeMode(jail: RootJail, remotePath: unknown, rawMode: unknown): Promise<ChmodResult> {
  const mode = checkMode(rawMode, 'fs.chmod', true) as number;
  return withInode(jail, remotePath, async (target, _stats, resolved) => {
    await fsp.chmod(target, mode);
    return { path: resolved, mode };
  });
}

/** fs.utimes: modification (and access) time, as cp keeps them. */
export async function changeTimes(jail: RootJail, remotePath: unknown, rawMtime: unknown, rawAtime: unknown): Promise<UtimesResult> {
  const mtimeMs = checkTime(rawMtime, 'mtimeMs', 'fs.utimes');
  const atimeMs = rawAtime === undefined ? mtimeMs : checkTime(rawAtime, 'atimeMs', 'fs.utimes');
  return withInode(jail, remotePath, async (target, _stats, resolved) => {
    await fsp.utimes(target, atimeMs / 1000, mtimeMs / 1000);
    return { path: resolved, mtimeMs };
  });
}

/** fs.hash: SHA-256 of the first `length` bytes of a regular file (cp --resume checks its prefix). */
export async function hashPrefix(jail: RootJail, remotePath: unknown, rawLength: unknown, signal: AbortSignal): Promise<HashResult> {
  if (typeof rawLength !== 'number' || !Number.isSafeInteger(rawLength) || rawLength < 0) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.hash: length must be an integer >= 0, got ${describeValue(rawLength)}`);
  }
  return withInode(jail, remotePath, async (target, stats, _resolved) => {
    if (!stats.isFile()) {
      if (stats.isDirectory()) throw systemError('EISDIR', 'open', remotePath as string, `fs.hash: '${remotePath as string}' is a directory`);
      throw agentError(AgentErrorCode.NOT_REGULAR_FILE, `fs.hash: '${remotePath as string}' is not a regular file: refused`);
    }
    // The magic link reopens the checked inode (O_NOFOLLOW here would refuse the link itself).
    const file = await fsp.open(target, fsConstants.O_RDONLY);
    try {
      const opened = await file.stat();
      if (opened.ino !== stats.ino || opened.dev !== stats.dev) throw agentError(AgentErrorCode.FILE_CHANGED, `fs.hash: '${remotePath as string}' changed while being opened`);
      const length = Math.min(rawLength, opened.size);
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(Math.min(HASH_CHUNK, Math.max(1, length)));
      let position = 0;
      while (position < length) {
        throwIfAborted(signal);
        const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - position), position);
        if (bytesRead === 0) throw agentError(AgentErrorCode.FILE_CHANGED, `fs.hash: '${remotePath as string}' shrank while being hashed`);
        hash.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
      return { size: opened.size, length, sha256: hash.digest('hex') };
    } finally {
      await file.close();
    }
  });
}
