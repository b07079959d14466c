// Types of the exports src/aio/iosubmit provides: one kernel AIO context per instance,
// driven through the batch contract (one JS<->C++ crossing per batch).
import type { BatchEngine, BatchLayout } from './batch.d.cts';

/** IoSubmitContext.layout: the shared batch layout plus this engine's limits. */
export interface IoSubmitLayout extends BatchLayout {
  /** iocbs handed to one io_submit call at most (32, like QEMU). */
  readonly maxIocbsPerCall: number;
  /** The largest maxInFlight the constructor accepts. */
  readonly maxInFlightLimit: number;
  /** RWF_NOWAIT, for the rwFlags field. */
  readonly rwfNowait: number;
}

/** One Linux AIO context (io_setup) with an eventfd watched on the Node loop. */
export interface IoSubmitContext extends BatchEngine {
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

/** The native IoSubmitContext class. */
export interface IoSubmitContextConstructor {
  /**
   * io_setup(maxInFlight); `completions` holds maxInFlight completions (layout.completionStride
   * numbers each). Throws a system error (code EAGAIN, with `aioMaxNr`/`aioNr`) naming
   * /proc/sys/fs/aio-max-nr when the kernel's AIO limit is exhausted.
   */
  new (config: { readonly maxInFlight: number; readonly completions: Float64Array }, onComplete: (count: number) => void): IoSubmitContext;
  readonly layout: IoSubmitLayout;
}

/** The io_submit part of the addon (src/aio/iosubmit). */
export interface IoSubmitBinding {
  readonly IoSubmitContext: IoSubmitContextConstructor;
  /** The same object as IoSubmitContext.layout. */
  readonly ioSubmitLayout: IoSubmitLayout;
}
