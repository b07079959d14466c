import type { Socket } from 'node:net';
import type { ConnectionPeer } from '@vmlink/transport';
import { isAvailable, loadBinding, type SocketBinding } from '@vmlink/native';

/** `net.Socket`'s libuv handle; `fd` is -1 (or absent) once closed or off Unix. */
interface HandleWithFd {
  readonly fd?: number;
}

let binding: SocketBinding | null | undefined;

/** The addon's SO_PEERCRED, or null where it cannot load (not built, not Linux). */
function peerCredentialsBinding(): SocketBinding | null {
  if (binding === undefined) binding = isAvailable() ? loadBinding() : null;
  return binding;
}

/**
 * The kernel-recorded identity of the process at the other end of a connected Unix
 * socket (SO_PEERCRED: for an accepted socket, the process that connected; for a dialed
 * one, the process that listened). Undefined where it cannot be known: the native addon
 * is not available, or the socket no longer has an fd. Never taken from the peer's bytes.
 */
export function unixPeer(socket: Socket): ConnectionPeer | undefined {
  const native = peerCredentialsBinding();
  const fd = (socket as unknown as { _handle?: HandleWithFd | null })._handle?.fd;
  if (native === null || typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const { uid, gid, pid } = native.peerCredentials(fd);
    return { uid, gid, pid };
  } catch {
    return undefined; // e.g. the peer already vanished: no identity rather than a wrong one
  }
}

