import type { VsockAddress } from './address.js';
import { vsockBinding, type Binding, type SocketType } from './binding.js';
import { invalidFdTypeError } from './errors.js';
import { validateFd } from './options.js';

/** Internal: how VsockServer (and fromFd) hands a ConnectedFd to a new socket. */
export const kAccepted = Symbol('vmlink.vsock.accepted');

/** A connected socket's fd (now owned by whoever gets it), its peer, and the addon. */
export interface ConnectedFd {
  binding: Binding;
  fd: number;
  peer: VsockAddress;
}

/**
 * Checks that a caller's fd is a connected AF_VSOCK socket of `type` (what fromFd takes).
 * Throws ERR_INVALID_FD_TYPE for anything else, or the getpeername error (ENOTCONN) when
 * it is not connected; the fd is then left alone, still the caller's.
 */
export function adoptConnectedFd(fd: number, type: SocketType): ConnectedFd {
  validateFd(fd, 'fd');
  const binding = vsockBinding();
  const info = binding.vsockAdoptFd(fd);
  if (!info.vsock) throw invalidFdTypeError(fd, 'is not an AF_VSOCK socket');
  if (info.listening) throw invalidFdTypeError(fd, 'is a listening socket: use server.listen({ fd })');
  if (info.type !== type) throw invalidFdTypeError(fd, `is a ${info.type} socket, not a ${type} socket`);
  return { binding, fd, peer: binding.vsockPeerName(fd) };
}
