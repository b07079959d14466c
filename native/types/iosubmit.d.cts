// Types of the exports src/aio/iosubmit provides: one kernel AIO context per instance,
// driven through shared typed-array tables (one JS<->C++ crossing per batch).

/** Field offsets, op codes and status codes of the shared tables (see iosubmit_module.cc). */
export interface IoSubmitLayout {
  /** Numbers per request in `IoSubmitContext.requests`. */
  readonly requestStride: number;
  /** Numbers per record in `submitRecords`: [iocbs passed, iocbs accepted, microseconds]. */
  readonly submitRecordStride: number;
  /** iocbs handed to one io_submit call at most (32, like QEMU). */
  readonly maxIocbsPerCall: number;
  /** The largest maxInFlight the constructor accepts. */
  readonly maxInFlightLimit: number;
  /** RWF_NOWAIT, for the rwFlags field. */
  readonly rwfNowait: number;
  readonly fields: {
    readonly slot: number;
    readonly fd: number;
    readonly op: number;
    /** position % 2^32 */
    readonly positionLow: number;
    /** floor(position / 2^32) */
    readonly positionHigh: number;
    readonly rwFlags: number;
    /** 0 = no alignment check; else the O_DIRECT memory alignment. */
    readonly alignMemory: number;
    readonly alignOffset: number;
    readonly alignLength: number;
  };
  readonly ops: {
    readonly read: number;
    readonly write: number;
    readonly readv: number;
    readonly writev: number;
    readonly fsync: number;
    readonly fdatasync: number;
  };
  /** Per-request submit status; positive values are errnos that failed only that request. */
  readonly status: {
    readonly submitted: number;
    /** io_submit said EAGAIN (context full): queue again after completions. */
    readonly deferred: number;
    /** The O_DIRECT alignment check failed: not submitted. */
    readonly misaligned: number;
  };
}

/** The buffer(s) of one request: a Uint8Array (read/write), a list (readv/writev), or none (fsync). */
export type IoSubmitBuffers = Uint8Array | readonly Uint8Array[] | undefined;

/** One Linux AIO context (io_setup) with an eventfd watched on the Node loop. */
export interface IoSubmitContext {
  /** Request table: `requestStride` numbers per request, `maxInFlight` requests. */
  readonly requests: Float64Array;
  /** One status per request of the last submit() call. */
  readonly status: Int32Array;
  /** Pairs [slot, res] of the batch being delivered to onComplete (res < 0 is -errno). */
  readonly completions: Float64Array;
  /** Records of the last submit() call, one per io_submit call. */
  readonly submitRecords: Float64Array;
  /** Requests in the kernel. While > 0 the eventfd watcher keeps the loop alive. */
  readonly inFlight: number;
  readonly destroyed: boolean;
  /** True when completions are reaped from the userspace ring (else io_getevents). */
  readonly usesRing: boolean;
  /** The eventfd (-1 once destroyed); exposed for leak tests. */
  readonly eventFd: number;
  /**
   * Submits requests 0..count-1 of the request table; `buffers[i]` belongs to request i.
   * Returns the number of records written to `submitRecords`. The caller must keep each
   * buffer reachable until its slot completes.
   */
  submit(count: number, buffers: readonly IoSubmitBuffers[]): number;
  /** io_cancel on a slot in flight: 0 if the kernel took it, else an errno (EINVAL: not cancellable). */
  cancel(slot: number): number;
  /** io_destroy (waits for requests in flight) and closes the eventfd. Idempotent. */
  destroy(): void;
}

/** The native IoSubmitContext class. */
export interface IoSubmitContextConstructor {
  /**
   * io_setup(maxInFlight). Throws a system error (code EAGAIN, with `aioMaxNr`/`aioNr`)
   * naming /proc/sys/fs/aio-max-nr when the kernel's AIO limit is exhausted.
   */
  new (maxInFlight: number, onComplete: (count: number) => void): IoSubmitContext;
}

/** The io_submit part of the addon (src/iosubmit). */
export interface IoSubmitBinding {
  readonly IoSubmitContext: IoSubmitContextConstructor;
  readonly ioSubmitLayout: IoSubmitLayout;
}
