/**
 * @vmlink/vhost-user-vsock: a virtio-vsock device for QEMU's `vhost-user-vsock-pci`
 * (no /dev/vhost-vsock, no root), host side exposed as Firecracker-style hybrid vsock
 * Unix sockets. The data path runs in the addon on the Node loop.
 */
export { createVsockDevice, VsockDevice, type VsockDeviceEvents, type CreateDeviceHooks } from './device.js';
export {
  type VsockDeviceOptions,
  DEFAULT_BUF_ALLOC,
  DEFAULT_MAX_CONNECTIONS,
  MIN_GUEST_CID,
  MAX_GUEST_CID,
} from './options.js';
export { type VsockDeviceStats, totalDropped } from './stats.js';
export { VsockDeviceError, VsockDeviceErrorCode } from './errors.js';
export { qemuVsockArgs, type QemuVsockArgsOptions } from './qemu-args.js';
