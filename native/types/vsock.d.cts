// Types of src/vsock: AF_VSOCK system calls on fds owned by an FdStream or a
// VsockListener. Errors look like Node's: `connect ECONNREFUSED vsock://1:1234` with
// code, errno, syscall, address, and cid/port where an address was involved.

/** An AF_VSOCK socket type. */
export type VsockSocketType = 'stream' | 'seqpacket' | 'dgram';

/** An AF_VSOCK address: context id and port. */
export interface VsockAddress {
  cid: number;
  port: number;
}

/** What a VsockListener reports to JavaScript. */
export interface VsockListenerCallbacks {
  /** A new connection: `fd` is non-blocking, close-on-exec and now owned by the callee. */
  onConnection(fd: number, cid: number, port: number): void;
  /** accept failed (EMFILE...); the listener has stopped: call start() to resume. */
  onError(error: NodeJS.ErrnoException): void;
}

/** A listening AF_VSOCK fd accepted on the Node loop. */
export interface VsockListener {
  /** The listening fd, or -1 once closed. */
  readonly fd: number;
  /** Accept on the loop (accept4, SOCK_NONBLOCK|SOCK_CLOEXEC). */
  start(): void;
  stop(): void;
  /** Closes the listening fd once. Idempotent. */
  close(): void;
  ref(): void;
  unref(): void;
}

/** The native VsockListener class. */
export interface VsockListenerConstructor {
  /** Takes ownership of the listening `fd` at once. */
  new (fd: number, callbacks: VsockListenerCallbacks): VsockListener;
}

/** AF_VSOCK constants as the kernel headers define them. */
export interface VsockConstants {
  readonly AF_VSOCK: number;
  readonly VMADDR_CID_ANY: number;
  readonly VMADDR_CID_HYPERVISOR: number;
  readonly VMADDR_CID_LOCAL: number;
  readonly VMADDR_CID_HOST: number;
  readonly VMADDR_PORT_ANY: number;
  readonly VMADDR_FLAG_TO_HOST: number;
  readonly SOMAXCONN: number;
}

/** What vsockAdoptFd() found out about an fd it was handed. */
export interface VsockAdoptInfo {
  /** SO_DOMAIN is AF_VSOCK (only then was the fd made non-blocking and close-on-exec). */
  vsock: boolean;
  type: VsockSocketType | 'other';
  /** SO_ACCEPTCONN. */
  listening: boolean;
}

/** The AF_VSOCK part of the addon (src/vsock). */
export interface VsockBinding {
  /** socket(AF_VSOCK, type | SOCK_NONBLOCK | SOCK_CLOEXEC): the caller owns the fd. */
  vsockSocket(type: VsockSocketType): number;
  /** 0 when socket(AF_VSOCK, type) works here, else its errno (ENODEV for dgram on 6.1). */
  vsockProbe(type: VsockSocketType): number;
  vsockBind(fd: number, cid: number, port: number): void;
  vsockListen(fd: number, backlog: number): void;
  /** true: connected at once; false: EINPROGRESS (await writable, then vsockConnectResult). */
  vsockConnect(fd: number, cid: number, port: number, flags: number): boolean;
  /** SO_ERROR after a non-blocking connect: null on success, else the connect error. */
  vsockConnectResult(fd: number, cid: number, port: number): NodeJS.ErrnoException | null;
  vsockSockName(fd: number): VsockAddress;
  vsockPeerName(fd: number): VsockAddress;
  /** SO_VM_SOCKETS_CONNECT_TIMEOUT in milliseconds. */
  vsockSetConnectTimeout(fd: number, milliseconds: number): void;
  /** SO_VM_SOCKETS_BUFFER_SIZE (raising SO_VM_SOCKETS_BUFFER_MAX_SIZE when needed). */
  vsockSetBufferSize(fd: number, bytes: number): void;
  vsockGetBufferSize(fd: number): number;
  /** Inspects an fd from elsewhere (systemd, a parent); makes a vsock one non-blocking. */
  vsockAdoptFd(fd: number): VsockAdoptInfo;
  /** IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock. */
  vsockLocalCid(): number;
  VsockListener: VsockListenerConstructor;
  vsockConstants: VsockConstants;
}
