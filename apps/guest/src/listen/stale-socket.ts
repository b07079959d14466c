import { randomBytes } from 'node:crypto';
import { link, lstat, rename, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { SystemError } from '@vmlink/errors';

/** What happened to a path that was in the way of a Unix socket listener. */
export type ReclaimOutcome = 'removed';

/**
 * Removes a Unix socket file left behind by a killed agent, so that `listen` can bind
 * again. Only a socket (as lstat sees it: a symlink is never followed) that nobody
 * answers on is removed; anything else fails with EADDRINUSE naming why. The socket is
 * first renamed to a private name and checked again by inode there, so a file swapped in
 * between the check and the removal is put back, never deleted.
 */
export async function reclaimStaleSocket(socketPath: string): Promise<ReclaimOutcome> {
  const before = await lstat(socketPath);
  if (!before.isSocket()) throw inUse(socketPath, `${socketPath} exists and is not a socket (${kindOf(before)}): not removed`);
  if (await somethingAnswers(socketPath)) throw inUse(socketPath, `another process serves ${socketPath}`);
  const aside = path.join(path.dirname(socketPath), `.${path.basename(socketPath)}.vmlink-stale-${process.pid}-${randomBytes(4).toString('hex')}`);
  await rename(socketPath, aside);
  const moved = await lstat(aside);
  if (moved.isSocket() && moved.ino === before.ino && moved.dev === before.dev) {
    await unlink(aside);
    return 'removed';
  }
  // Something else was swapped in: put it back (link refuses to overwrite), keep it.
  await link(aside, socketPath).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
  throw inUse(socketPath, `${socketPath} changed while it was being reclaimed: not removed`);
}

function inUse(socketPath: string, message: string): SystemError {
  return new SystemError({ code: 'EADDRINUSE', errno: -98, syscall: 'listen', path: socketPath, message: `listen EADDRINUSE: ${message}` });
}

function kindOf(info: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean }): string {
  if (info.isSymbolicLink()) return 'a symlink';
  if (info.isFile()) return 'a regular file';
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO';
  return 'not a socket';
}

/** True when a connect() to the socket succeeds. */
export function somethingAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
