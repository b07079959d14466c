import { lstat, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { SystemError } from '@vmlink/errors';

/** How long a probe waits for a connect to a Unix socket (it normally answers at once). */
const PROBE_TIMEOUT_MS = 2000;

type Probe = 'refused' | 'answered' | 'gone' | { readonly error: Error };

/** Try to connect: a stale socket file refuses (ECONNREFUSED), a live one accepts. */
function probe(path: string): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    const finish = (result: Probe): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    // No answer in time: something holds the name (a full backlog); treat it as alive.
    const timer = setTimeout(() => finish('answered'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => finish('answered'));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') finish('refused');
      else if (error.code === 'ENOENT') finish('gone');
      else if (error.code === 'EAGAIN') finish('answered'); // a live listener with a full backlog
      else finish({ error });
    });
  });
}

function kindOf(stats: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean }): string {
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFile()) return 'a regular file';
  if (stats.isFIFO()) return 'a FIFO';
  return 'not a socket';
}

/** EADDRINUSE as Node reports it, with why the name was not reclaimed. */
export function addressInUse(path: string, why?: string): SystemError {
  return new SystemError({
    code: 'EADDRINUSE',
    errno: 98,
    syscall: 'listen',
    address: path,
    path,
    message: `listen EADDRINUSE: address already in use ${path}${why ? ` (${why})` : ''}`,
  });
}

/**
 * Remove the socket file at `path` if, and only if, it is a stale one: `lstat` says it
 * is a socket (never a regular file, a symlink, a directory...) AND a connect to it is
 * refused (nobody listens). Anything else throws: `ENOTSOCK` for a non-socket in the
 * way, `EADDRINUSE` for a live socket. Resolves when the name is free (removed, or it
 * vanished meanwhile); the caller then binds again.
 *
 * Between the refused probe and the unlink another process could take the name; the
 * file is removed only if it is still the same inode the probe looked at, which
 * narrows that window to the unlink itself.
 */
export async function reclaimStaleSocket(path: string): Promise<void> {
  let before;
  try {
    before = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!before.isSocket()) {
    throw new SystemError({
      code: 'ENOTSOCK',
      errno: 88,
      syscall: 'listen',
      address: path,
      path,
      message: `listen ENOTSOCK ${path}: ${kindOf(before)} is in the way; only a stale socket is ever removed`,
    });
  }
  const result = await probe(path);
  if (result === 'gone') return;
  if (result === 'answered') throw addressInUse(path, 'a server answers on it');
  if (result !== 'refused') throw addressInUse(path, `the probe connect failed with ${(result.error as NodeJS.ErrnoException).code ?? result.error.message}; not removed`);
  const after = await lstat(path).catch(() => undefined);
  if (after === undefined) return;
  if (after.ino !== before.ino || after.dev !== before.dev) throw addressInUse(path, 'it was replaced while being checked');
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
