import { assertLinux } from '@vmlink/errors';
import { loadBinding, type NativeBinding } from '@vmlink/native';

export type FdStream = InstanceType<NativeBinding['FdStream']>;
export type FdStreamCallbacks = ConstructorParameters<NativeBinding['FdStream']>[2];

/** The addon (loaded on first use): ERR_VMLINK_UNSUPPORTED_PLATFORM off Linux, ERR_VMLINK_NATIVE_NOT_BUILT unbuilt. */
export function nativeBinding(): NativeBinding {
  assertLinux('@vmlink/transport-virtio-serial (the guest side of virtio-serial)');
  return loadBinding();
}
