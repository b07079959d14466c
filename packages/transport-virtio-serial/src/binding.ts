import { assertLinux } from '@vmlink/errors';
import { loadBinding, type NativeBinding } from '@vmlink/native';

/** The native stream over a port whose host hangs up and comes back (EOF is not the end). */
export type VirtioSerialStream = InstanceType<NativeBinding['VirtioSerialStream']>;

/** The addon (loaded on first use): ERR_VMLINK_UNSUPPORTED_PLATFORM off Linux, ERR_VMLINK_NATIVE_NOT_BUILT unbuilt. */
export function nativeBinding(): NativeBinding {
  assertLinux('@vmlink/transport-virtio-serial (the guest side of virtio-serial)');
  return loadBinding();
}
