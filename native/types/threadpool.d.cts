// Types of the exports src/aio/threadpool provides.

/**
 * Operation codes in ThreadPool.submit's meta array: 0 read, 1 write, 2 fsync, 3 fdatasync,
 * 4 read trying RWF_NOWAIT first (its completion says if that brought it all), 5 fallocate,
 * 6 ftruncate, 7 discard (punch-hole on a file, ioctl(BLKDISCARD) on a block device).
 */
export type ThreadPoolOp = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/**
 * Called once per batch of completions with 6 numbers per request:
 * id, result (bytes, or -errno), partial (bytes a failed write transferred first),
 * queue wait in microseconds, service time in microseconds, flags (1: an op-4 read's
 * RWF_NOWAIT attempt brought it all or hit EOF; 2: an op-7 discard ran BLKDISCARD).
 */
export type ThreadPoolCompletionCallback = (completions: Float64Array) => void;

/** Every number the pool works with; the defaults live in @vmlink/aio-threadpool. */
export interface ThreadPoolConfig {
  /** Workers started at once and always kept (0..256). */
  readonly minThreads: number;
  /** Most workers spawn() may reach (1..256, >= minThreads). */
  readonly maxThreads: number;
  /** A worker idle this long exits while more than minThreads live (ms, >= 1). */
  readonly idleTimeoutMs: number;
  /** Completion coalescing: the most a completion waits for a later one (us; 0 = never). */
  readonly maxHoldUs: number;
  /** Completion coalescing: the most completions held together (>= 1). */
  readonly maxHeld: number;
}

/** A native thread pool, as `new ThreadPool(config, onComplete)` returns it. */
export interface ThreadPoolInstance {
  /**
   * Queues `meta.length / 8` requests. Per request, meta holds: id, op (ThreadPoolOp), fd,
   * buffer count (op 5: the fallocate mode bits; ops 2, 3, 6, 7: 0), position low 32 bits,
   * position high 32 bits (op 6: the size), length low 32 bits, length high 32 bits
   * (ops 5 and 7); the buffers of reads and writes follow each other in `buffers`. The
   * pool keeps `buffers` alive until the last request completes.
   */
  submit(meta: Uint32Array, buffers: readonly ArrayBufferView[]): void;
  /** Withdraws a request that no worker has started; false if it started or finished. */
  cancel(id: number): boolean;
  /**
   * Withdraws many at once, under one lock (workers cannot take later ones meanwhile);
   * per id, 1 when withdrawn, 0 when it started or finished.
   */
  cancel(ids: Uint32Array): Uint8Array;
  /**
   * Adds up to `count` workers (never past maxThreads); returns how many. The first starts
   * at once, each new one starts the next, so this call costs one thread creation.
   */
  spawn(count: number): number;
  /** Stops and joins the workers; queued requests are dropped without completions. */
  destroy(): void;
  /** Workers alive or starting. */
  readonly threads: number;
  /** Workers waiting for work. */
  readonly idleThreads: number;
  /** The most workers alive at once so far. */
  readonly peakThreads: number;
  /** Requests queued that no worker has taken. */
  readonly queued: number;
  /** Requests submitted and not yet delivered or cancelled. */
  readonly inFlight: number;
}

/** The thread pool part of the addon (src/threadpool). */
export interface ThreadPoolBinding {
  ThreadPool: new (config: ThreadPoolConfig, onComplete: ThreadPoolCompletionCallback) => ThreadPoolInstance;
}
