// Types of the exports src/aio/threadpool provides.

/**
 * Operation codes in ThreadPool.submit's meta array: 0 read, 1 write, 2 fsync, 3 fdatasync,
 * 4 read trying the page cache alone first (RWF_NOWAIT; its completion says if that served it).
 */
export type ThreadPoolOp = 0 | 1 | 2 | 3 | 4;

/**
 * Called once per batch of completions with 6 numbers per request:
 * id, result (bytes, or -errno), partial (bytes a failed write transferred first),
 * queue wait in microseconds, service time in microseconds, flags (1: an op-4 read was
 * served whole from the page cache).
 */
export type ThreadPoolCompletionCallback = (completions: Float64Array) => void;

export interface ThreadPoolInstance {
  /**
   * Queues `meta.length / 6` requests. Per request, meta holds: id, op (ThreadPoolOp), fd,
   * buffer count, position low 32 bits, position high 32 bits; its buffers follow each
   * other in `buffers`. The pool keeps `buffers` alive until the last request completes.
   */
  submit(meta: Uint32Array, buffers: readonly ArrayBufferView[]): void;
  /** Withdraws a request that no worker has started; false if it started or finished. */
  cancel(id: number): boolean;
  /** Stops and joins the workers; queued requests are dropped without completions. */
  destroy(): void;
  readonly threads: number;
  /** Requests submitted and not yet delivered or cancelled. */
  readonly inFlight: number;
}

export interface ThreadPoolBinding {
  ThreadPool: new (threads: number, onComplete: ThreadPoolCompletionCallback) => ThreadPoolInstance;
}
