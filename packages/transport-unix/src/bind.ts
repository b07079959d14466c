import { closeSync, constants as fsConstants, existsSync, fstatSync, lstatSync, openSync, rmdirSync, unlinkSync } from 'node:fs';
import { chmod, link, mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { SystemError } from '@vmlink/errors';
import { whenListening } from '@vmlink/transport';
import { MAX_PATH_BYTES, netPath, type UnixAddress } from './address.js';
import { addressInUse, reclaimStaleSocket } from './reclaim.js';

export interface BindOptions {
  /** Permission bits of the socket file (default 0o600). */
  readonly mode: number;
  /** Remove a stale socket file in the way (see reclaimStaleSocket). */
  readonly reclaimStale: boolean;
  readonly backlog?: number;
}

export interface BoundSocket {
  readonly server: Server;
  /** After `server.close()`: remove the socket file, if it is still ours. */
  release(): void;
}

function ignoreMissing(action: () => void): void {
  try {
    action();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function bestEffort(action: () => void): void {
  try {
    action();
  } catch {
    // see the callers
  }
}

function listenError(error: unknown, path: string, doing: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code !== 'string') return error as Error;
  return new SystemError({
    code,
    errno: (error as NodeJS.ErrnoException).errno,
    syscall: 'listen',
    address: path,
    path,
    message: `listen ${code} ${path} (${doing}: ${(error as Error).message})`,
  });
}

async function listenOn(path: string, backlog: number | undefined): Promise<Server> {
  // allowHalfOpen: end() sends FIN and leaves our reading side open (halfClose).
  const server = createServer({ allowHalfOpen: true });
  await whenListening(server, () => server.listen({ path, backlog }));
  return server;
}

/** Linux exposes each open fd as a directory path: the private dir is reached through it. */
const FD_DIR = '/proc/self/fd';

/**
 * Open the private directory mkdtemp made and check it is still ours (a 0700 directory
 * of our uid): in a directory others can write, its name could have been swapped.
 */
function openPrivateDir(privateDir: string, target: string): number {
  const fd = openSync(privateDir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  const stats = fstatSync(fd);
  if (!stats.isDirectory() || stats.uid !== process.getuid?.() || (stats.mode & 0o077) !== 0) {
    closeSync(fd);
    throw new SystemError({
      code: 'EPERM',
      errno: 1,
      syscall: 'listen',
      address: target,
      path: target,
      message: `listen EPERM ${target} (the private directory ${privateDir} was replaced by someone else)`,
    });
  }
  return fd;
}

/**
 * Bind and listen on a filesystem Unix socket whose file has exactly `mode`, with no
 * moment at which anyone else could connect under looser permissions.
 *
 * `net.Server` binds and listens in one call, so chmod after listen() leaves a window
 * where the file has the umask's bits and a connect can already be queued; changing
 * the umask is process-global and racy. Instead the socket is bound inside a private
 * directory (mkdtemp: mode 0700, ours) next to the target, chmod'ed there, and then
 * hard-linked to the target name. link() never replaces an existing file (EEXIST, so
 * nothing at the target is clobbered; unlike rename()), and the socket is reachable
 * under the public name only once it already has `mode`. The private name is removed
 * at once.
 *
 * Every step on the private name goes through the directory's open fd
 * (`/proc/self/fd/N/s`), held until the server closes: a swapped or re-created directory
 * name (e.g. a symlink planted in /tmp after the rmdir) can never redirect the chmod,
 * the link, or libuv's unlink of the bound name on close to another file. It also keeps
 * the bound name short whatever the target's length. Without /proc the plain private
 * path is used.
 */
export async function bindUnixSocket(address: UnixAddress, options: BindOptions): Promise<BoundSocket> {
  if (address.abstract) {
    // The abstract namespace has no file and no permissions: mode does not apply, and a
    // name in use is never stale (it disappears with its last socket).
    const server = await listenOn(netPath(address), options.backlog);
    return { server, release: () => {} };
  }

  const target = address.path;
  let privateDir: string;
  try {
    privateDir = await mkdtemp(join(dirname(target), '.'));
  } catch (error) {
    throw listenError(error, target, 'cannot create a private directory next to it');
  }
  let dirFd: number | undefined;
  let server: Server | undefined;
  let inPrivate = join(privateDir, 's');
  // Best effort: what is left of a private directory is clutter, never a reason to fail
  // (or to leak a listening server from a bind that succeeded).
  const removePrivate = (): void => {
    bestEffort(() => unlinkSync(inPrivate));
    bestEffort(() => rmdirSync(privateDir));
  };
  const closeDirFd = (): void => {
    if (dirFd !== undefined) closeSync(dirFd);
    dirFd = undefined;
  };
  try {
    dirFd = openPrivateDir(privateDir, target);
    if (existsSync(`${FD_DIR}/${dirFd}`)) inPrivate = `${FD_DIR}/${dirFd}/s`;
    else if (Buffer.byteLength(inPrivate) > MAX_PATH_BYTES) {
      throw new SystemError({ code: 'ENAMETOOLONG', errno: 36, syscall: 'listen', address: target, path: target, message: `listen ENAMETOOLONG ${target} (its private bind name is too long and ${FD_DIR} is not available)` });
    }
    server = await listenOn(inPrivate, options.backlog);
    await chmod(inPrivate, options.mode);
    await publish(inPrivate, target, options.reclaimStale);
  } catch (error) {
    server?.close();
    removePrivate();
    closeDirFd();
    throw error instanceof SystemError ? error : listenError(error, target, 'binding');
  }
  removePrivate();
  const published = lstatSync(target);
  const listening = server;
  return {
    server: listening,
    release(): void {
      closeDirFd(); // server.close() already ran libuv's unlink of the private name
      // Remove the name only if it is still our socket (not one a later server put there).
      let current;
      try {
        current = lstatSync(target);
      } catch {
        return;
      }
      if (current.ino === published.ino && current.dev === published.dev) ignoreMissing(() => unlinkSync(target));
    },
  };
}

/** Give the socket its public name; on EEXIST reclaim a stale socket once if asked. */
async function publish(privatePath: string, target: string, reclaimStale: boolean): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await link(privatePath, target);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw listenError(error, target, 'publishing the socket');
      if (!reclaimStale) throw addressInUse(target, 'pass reclaimStale: true to remove a stale socket file');
      if (attempt > 0) throw addressInUse(target, 'taken again while being reclaimed');
      await reclaimStaleSocket(target);
    }
  }
}
