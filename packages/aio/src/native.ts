import { loadBinding, type NativeBinding } from '@vmlink/native';

let binding: NativeBinding | undefined;
let loadError: Error | undefined;

/**
 * The addon, loaded once (importing @vmlink/native never throws; loading may). Off Linux
 * or unbuilt it throws the loader's coded error (ERR_VMLINK_UNSUPPORTED_PLATFORM,
 * ERR_VMLINK_NATIVE_NOT_BUILT, ERR_VMLINK_NATIVE_MISMATCH).
 */
export function nativeBinding(): NativeBinding {
  if (binding !== undefined) return binding;
  if (loadError !== undefined) throw loadError;
  try {
    binding = loadBinding();
    return binding;
  } catch (error) {
    loadError = error as Error;
    throw loadError;
  }
}

/** The addon, or undefined when it cannot be loaded here. */
export function tryNativeBinding(): NativeBinding | undefined {
  try {
    return nativeBinding();
  } catch {
    return undefined;
  }
}
