/**
 * @vmlink/transport-virtio-serial: virtio-serial ports as a @vmlink/transport plugin.
 * Guest: `virtio-serial:NAME` (listen). Host: `virtio-serial+unix:/path` (dial QEMU's
 * chardev socket). A handshake per Connection keeps stale bytes out of new Connections.
 */
export { virtioSerial, VirtioSerialTransport, type VirtioSerialOptions, type VirtioSerialSide } from './transport.js';
export {
  parseVirtioSerialAddress,
  GUEST_SCHEME,
  HOST_SCHEME,
  type VirtioSerialAddress,
  type GuestPortAddress,
  type HostSocketAddress,
} from './address.js';
export { HANGUP_GRACE_MS, VirtioSerialListener, type GuestListenerOptions } from './guest-listener.js';
export type { GuestPortLink } from './guest-connection.js';
