import { loadBinding, type IoSubmitBinding, type NativeBinding } from '@vmlink/native';

// @vmlink/native re-exports only IoSubmitBinding; the rest is derived from it.
export type IoSubmitContext = InstanceType<IoSubmitBinding['IoSubmitContext']>;
export type IoSubmitLayout = IoSubmitBinding['ioSubmitLayout'];
export type IoSubmitBuffers = Parameters<IoSubmitContext['submit']>[1][number];

/**
 * The addon (loaded once by @vmlink/native). Off Linux or unbuilt it throws the loader's
 * coded error (ERR_VMLINK_UNSUPPORTED_PLATFORM, ERR_VMLINK_NATIVE_NOT_BUILT, ...).
 */
export function ioSubmitBinding(): NativeBinding {
  return loadBinding();
}
