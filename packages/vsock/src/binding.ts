import { assertLinux } from '@vmlink/errors';
import { loadBinding, type NativeBinding } from '@vmlink/native';

export type Binding = NativeBinding;
export type FdStream = InstanceType<NativeBinding['FdStream']>;
export type FdStreamCallbacks = ConstructorParameters<NativeBinding['FdStream']>[2];
export type NativeListener = InstanceType<NativeBinding['VsockListener']>;
/** The connection-oriented socket types this package wraps (datagrams have no API yet). */
export type SocketType = 'stream' | 'seqpacket';

/**
 * The addon, loaded on first use. Off Linux this throws ERR_VMLINK_UNSUPPORTED_PLATFORM
 * (importing the package never does); unbuilt, ERR_VMLINK_NATIVE_NOT_BUILT. Not cached
 * here: the loader caches, and checking the platform each time keeps the rule simple.
 */
export function vsockBinding(): Binding {
  assertPlatform();
  return loadBinding();
}

/** ERR_VMLINK_UNSUPPORTED_PLATFORM off Linux: constructors call it so that every entry point fails alike. */
export function assertPlatform(): void {
  assertLinux('@vmlink/vsock (AF_VSOCK)');
}
