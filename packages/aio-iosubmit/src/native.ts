import { loadBinding, type NativeBinding } from '@vmlink/native';
import type { BatchEngine, BatchLayout } from '@vmlink/aio';

/** IoSubmitContext.layout: the shared batch layout plus this engine's limits. */
export interface IoSubmitLayout extends BatchLayout {
  /** iocbs handed to one io_submit call at most (32, like QEMU). */
  readonly maxIocbsPerCall: number;
  /** The largest maxInFlight the constructor accepts. */
  readonly maxInFlightLimit: number;
  /** RWF_NOWAIT, for the rwFlags field. */
  readonly rwfNowait: number;
}

/** One kernel AIO context (io_setup) with an eventfd watched on the Node loop, driven by a BatchQueue. */
export interface IoSubmitEngine extends BatchEngine {
  /** Requests in the kernel. While > 0 the eventfd watcher keeps the loop alive. */
  readonly inFlight: number;
  readonly destroyed: boolean;
  /** True when completions are reaped from the userspace ring (else io_getevents). */
  readonly usesRing: boolean;
  /** The eventfd (-1 once destroyed); exposed for leak tests. */
  readonly eventFd: number;
  /** io_destroy (waits for requests in flight) and closes the eventfd. Idempotent. */
  destroy(): void;
}

export interface IoSubmitEngineClass {
  /** io_setup(maxInFlight); `completions` holds maxInFlight completions (layout.completionStride each). */
  new (config: { readonly maxInFlight: number; readonly completions: Float64Array }, onComplete: (count: number) => void): IoSubmitEngine;
  readonly layout: IoSubmitLayout;
}

/**
 * The addon (loaded once by @vmlink/native). Off Linux or unbuilt it throws the loader's
 * coded error (ERR_VMLINK_UNSUPPORTED_PLATFORM, ERR_VMLINK_NATIVE_NOT_BUILT, ...).
 */
export function ioSubmitBinding(): NativeBinding {
  return loadBinding();
}

/**
 * The engine class with the batch contract (its static `layout`). The addon's declared
 * types (native/types/iosubmit.d.cts) still describe the older per-engine tables, so the
 * class is typed here from the contract in @vmlink/aio.
 */
export function ioSubmitEngineClass(): IoSubmitEngineClass {
  return ioSubmitBinding().IoSubmitContext as unknown as IoSubmitEngineClass;
}
