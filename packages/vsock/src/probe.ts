import { isLinux, SystemError, VmlinkError } from '@vmlink/errors';
import { isAvailable } from '@vmlink/native';

import { vsockBinding } from './binding.js';

/** True when AF_VSOCK stream sockets can be created here (Linux, addon built, kernel support). Never throws. */
export function isSupported(): boolean {
  return isLinux() && isAvailable() && vsockBinding().vsockProbe('stream') === 0;
}

/** True when SOCK_SEQPACKET works (virtio and loopback transports, Linux >= 5.14). Never throws. */
export function isSeqpacketSupported(): boolean {
  return isLinux() && isAvailable() && vsockBinding().vsockProbe('seqpacket') === 0;
}

/**
 * True when AF_VSOCK datagrams work. Only VMCI (VMware) has them: virtio-vsock and
 * vsock_loopback on Linux 6.1 fail with ENODEV. Never throws.
 */
export function isDatagramSupported(): boolean {
  return isLinux() && isAvailable() && vsockBinding().vsockProbe('dgram') === 0;
}

/**
 * The datagram factory. Throws the kernel's refusal (ENODEV, EOPNOTSUPP...) as a
 * system error with syscall 'socket' where datagrams are missing, which is every
 * virtio guest; where the kernel has them, ERR_VMLINK_DATAGRAM_NOT_IMPLEMENTED (the
 * message API is not written yet: no VMCI machine to test it on).
 */
export function createDatagramSocket(): never {
  const errno = vsockBinding().vsockProbe('dgram');
  if (errno !== 0) {
    const binding = vsockBinding();
    throw new SystemError({
      code: binding.errnoName(errno),
      errno,
      syscall: 'socket',
      message: `socket ${binding.errnoName(errno)}: AF_VSOCK datagrams are not supported by this kernel's vsock transport`,
    });
  }
  throw new VmlinkError('ERR_VMLINK_DATAGRAM_NOT_IMPLEMENTED', 'AF_VSOCK datagrams exist here but @vmlink/vsock has no datagram API yet');
}

/** This machine's CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock). */
export function localCid(): number {
  return vsockBinding().vsockLocalCid();
}
