import { loadBinding, type IoSubmitContext, type IoSubmitContextConstructor, type IoSubmitLayout, type NativeBinding } from '@vmlink/native';

export type { IoSubmitLayout };
/** One kernel AIO context (io_setup) with an eventfd watched on the Node loop, driven by a BatchQueue. */
export type IoSubmitEngine = IoSubmitContext;
export type IoSubmitEngineClass = IoSubmitContextConstructor;

/**
 * The addon (loaded once by @vmlink/native). Off Linux or unbuilt it throws the loader's
 * coded error (ERR_VMLINK_UNSUPPORTED_PLATFORM, ERR_VMLINK_NATIVE_NOT_BUILT, ...).
 */
export function ioSubmitBinding(): NativeBinding {
  return loadBinding();
}

/** The engine class with the batch contract (its static `layout`). */
export function ioSubmitEngineClass(): IoSubmitEngineClass {
  return ioSubmitBinding().IoSubmitContext;
}
