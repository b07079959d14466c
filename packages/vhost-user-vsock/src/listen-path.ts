import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { VsockDeviceError, VsockDeviceErrorCode } from './errors.js';

/** True when something accepts connections on the Unix socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    // ECONNREFUSED: a socket file nobody listens on (a crashed daemon's leftover).
    probe.once('error', () => resolve(false));
  });
}

/**
 * Makes `path` free to bind: a stale socket file (nothing answers) is removed; a live
 * one, or a file that is not a socket, is an error naming the path.
 */
export async function reclaimSocketPath(path: string, name: string): Promise<void> {
  const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (info === undefined) return;
  if (!info.isSocket()) {
    throw new VsockDeviceError(VsockDeviceErrorCode.PATH_NOT_SOCKET, `${name} '${path}' exists and is not a socket; not removing it`);
  }
  if (await answers(path)) {
    throw new VsockDeviceError(VsockDeviceErrorCode.PATH_IN_USE, `${name} '${path}' is in use: something accepts connections on it`);
  }
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
