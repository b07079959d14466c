// Types of src/vhost_user: a virtio-vsock device served over vhost-user (QEMU's
// vhost-user-vsock-pci), host side as hybrid-vsock Unix sockets. Mechanism only: the
// numbers (buffer size, limits) and validation with coded errors live in
// @vmlink/vhost-user-vsock.

/** Options of `new VhostUserVsockDevice(options)`. */
export interface VhostUserVsockDeviceOptions {
  /** The guest's CID (>= 3), handed to the driver through GET_CONFIG. */
  guestCid: number;
  /** Hybrid-vsock base path: guest connects to port P reach `${udsPath}_${P}`. */
  udsPath: string;
  /** Listening AF_UNIX fd at udsPath (from unixListen); owned by the device from now on. */
  udsListenFd: number;
  /**
   * Listening AF_UNIX SOCK_SEQPACKET fd (host -> guest seqpacket connections); owned by the
   * device. Giving it also offers VIRTIO_VSOCK_F_SEQPACKET to the driver.
   */
  udsSeqpacketListenFd?: number;
  /** Listening vhost-user socket fd (QEMU connects); owned by the device. */
  vhostListenFd?: number;
  /** Or an already connected vhost-user fd (test harness over a socketpair); owned by the device. */
  vhostConnectedFd?: number;
  /** Receive buffer advertised per connection (buf_alloc); default 262144. */
  bufAlloc?: number;
  /** Connections per device (open + handshaking); default 4096. */
  maxConnections?: number;
  /** Log lines per second before they are only counted; default 20. */
  logLinesPerSecond?: number;
  /** Unannounced forwarded bytes before a CREDIT_UPDATE goes out on its own, 1..bufAlloc; default min(bufAlloc / 2, 128 KiB). */
  creditUpdateBytes?: number;
  /** tx completions gathered before an interrupt (capped at half the ring); default 1. */
  txNotifyBatch?: number;
  /** Longest wait of a tx completion for its interrupt, µs; default 0 (no waiting). */
  txNotifyDelayUs?: number;
  /** Guest rx buffers one host socket read may fill, 1..256; default 1. */
  rxBuffersPerRead?: number;
  /**
   * After host data reaches the guest, ask for the guest's tx kick only at its second
   * packet (its credit update rides with its reply) for at most this long, µs; default 0 (off).
   */
  txKickDeferUs?: number;
  /**
   * While a guest connection streams (txStreamBytes without a pause), ask for a tx kick only
   * every this many packets (bounded by credit and a quarter of the ring; the tail waits at
   * most txKickDeferUs); 1..32768, default 1 (off).
   */
  txKickBatch?: number;
  /** Bytes a connection sends without a pause before txKickBatch applies, 1..4294967295; default 262144. */
  txStreamBytes?: number;
}

/** Counters of one device; `dropped_*` each come with a (rate-limited) log line. */
export interface VhostUserVsockStats {
  readonly closed: boolean;
  readonly [counter: string]: number | boolean;
}

/** The events a VhostUserVsockDevice reports. */
export type VhostUserVsockEventName = 'qemu-connected' | 'qemu-disconnected' | 'driver-ready' | 'reset' | 'log';

/** The native vhost-user-vsock device (data path on the Node loop). */
export interface VhostUserVsockDevice {
  stats(): VhostUserVsockStats;
  /** Closes every fd, unmaps guest memory. Idempotent. */
  close(): void;
  /** Test harness: process vhost-user messages and all queues now, synchronously. */
  serviceNow(): void;
}

/** The native VhostUserVsockDevice class. */
export interface VhostUserVsockDeviceConstructor {
  new (options: VhostUserVsockDeviceOptions, onEvent: (name: VhostUserVsockEventName, detail: string) => void): VhostUserVsockDevice;
}

/** Test-only: what an in-process driver harness needs to play QEMU and the guest. */
export interface VhostUserTestHelpers {
  memfd(size: number): number;
  /** A Buffer over a MAP_SHARED mapping of fd (unmapped when collected). */
  map(fd: number, size: number): Buffer;
  /** One sendmsg of `bytes` with `fds` as SCM_RIGHTS. */
  sendMessage(fd: number, bytes: Uint8Array, fds?: readonly number[]): number;
  /** Non-blocking recv; null when nothing is there. */
  recv(fd: number, max: number): Buffer | null;
  eventfd(): number;
  /** The counter (and resets it), 0 when it was 0. */
  eventfdRead(fd: number): number;
  eventfdWrite(fd: number): void;
  /** A connected non-blocking AF_UNIX socket of that type. */
  connectUnix(path: string, type?: 'stream' | 'seqpacket'): number;
  /** Non-blocking accept4; null when nobody is waiting. */
  accept(fd: number): number | null;
}

/** The vhost-user part of the addon (src/vhostuser). */
export interface VhostUserBinding {
  VhostUserVsockDevice: VhostUserVsockDeviceConstructor;
  /** A non-blocking close-on-exec AF_UNIX listener bound at path (stream by default); throws EADDRINUSE etc. */
  unixListen(path: string, backlog?: number, type?: 'stream' | 'seqpacket'): number;
  vhostUserTestHelpers: VhostUserTestHelpers;
}
