import type { VsockBinding } from './types/vsock.d.cts';
import type { FdStreamBinding } from './types/fdstream.d.cts';
import type { AioBinding } from './types/aio.d.cts';
import type { ThreadPoolBinding } from './types/threadpool.d.cts';
import type { IoSubmitBinding } from './types/iosubmit.d.cts';
import type { VhostUserBinding } from './types/vhostuser.d.cts';
import type { PtyBinding } from './types/pty.d.cts';

// Every type a binding member names is public: users of loadBinding() meet them all.
export type * from './types/vsock.d.cts';
export type * from './types/fdstream.d.cts';
export type * from './types/aio.d.cts';
export type * from './types/batch.d.cts';
export type * from './types/threadpool.d.cts';
export type * from './types/iosubmit.d.cts';
export type * from './types/vhostuser.d.cts';
export type * from './types/pty.d.cts';

export interface CommonBinding {
  /** The symbolic name of an errno ("ECONNREFUSED"); accepts errno or -errno. */
  errnoName(errno: number): string;
  readonly addonVersion: number;
}

/** The peer of a connected AF_UNIX socket, as the kernel recorded it at connect time. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

export interface SocketBinding {
  /** SO_PEERCRED of a connected AF_UNIX socket fd; throws ENOTSOCK/EBADF/ENOPROTOOPT like Node's system errors. */
  peerCredentials(fd: number): PeerCredentials;
}

/** Everything the addon exports. */
export interface NativeBinding extends CommonBinding, SocketBinding, VsockBinding, FdStreamBinding, AioBinding, ThreadPoolBinding, IoSubmitBinding, VhostUserBinding, PtyBinding {}

export interface LoadOptions {
  /** Pretend to run on this platform (tests of the off-Linux path). */
  platform?: string;
  /** Load the addon from this package directory instead of @vmlink/native's own. */
  dir?: string;
  /** Pick the prebuild for this arch instead of `process.arch` (tests of the lookup). */
  arch?: string;
  /** Pick the prebuild for this libc instead of the detected one (tests of the lookup). */
  libc?: 'glibc' | 'musl';
  /** Judge this Node.js version instead of the running one (tests of the version floor). */
  nodeVersion?: string;
}

/**
 * Loads the addon once and returns it. Throws `ERR_VMLINK_UNSUPPORTED_NODE` before
 * Node.js 20, `ERR_VMLINK_UNSUPPORTED_PLATFORM` off Linux, `ERR_VMLINK_NATIVE_NOT_BUILT` when no binary exists, and
 * `ERR_VMLINK_NATIVE_MISMATCH` when the binary lacks an expected export.
 */
export declare function loadBinding(options?: LoadOptions): NativeBinding;
/** True when loadBinding() would succeed. Never throws. */
export declare function isAvailable(options?: LoadOptions): boolean;
export declare const expectedExports: Readonly<Record<'common' | 'socket' | 'vsock' | 'fdstream' | 'aio' | 'threadpool' | 'iosubmit' | 'vhostuser' | 'pty', readonly string[]>>;
