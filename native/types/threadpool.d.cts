// Types of the exports src/aio/threadpool provides.
import type { BatchEngine, BatchLayout } from './batch.d.cts';

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
  /**
   * The workers' Linux scheduling policy: 'normal' leaves them as the process's threads are,
   * 'batch' (SCHED_BATCH) and 'idle' (SCHED_IDLE) lower it (the choice is the caller's).
   */
  readonly scheduling: 'normal' | 'batch' | 'idle';
  /** The completion table the pool fills before each onComplete(count) (layout.completionStride numbers each). */
  readonly completions: Float64Array;
}

/**
 * A native thread pool, as `new ThreadPool(config, onComplete)` returns it: a BatchEngine
 * (ops read, write, fsync, fdatasync, readCacheFirst, fallocate, truncate, discard; codes
 * in `ThreadPool.layout.ops`) plus its worker counts.
 */
export interface ThreadPoolInstance extends BatchEngine {
  /** Withdraws requests no worker has started, under one lock: per slot, 1 when withdrawn. */
  cancel(slots: Uint32Array): Uint8Array;
  /**
   * Adds up to `count` workers (never past maxThreads); returns how many. The first starts
   * at once, each new one starts the next, so this call costs one thread creation.
   */
  spawn(count: number): number;
  /**
   * Workers beyond max(count, minThreads) leave as soon as they find the queue empty
   * (instead of after idleTimeoutMs). spawn() raises the count kept again.
   */
  trim(count: number): void;
  /**
   * Polling instead of sleeping (0 = never; integers 0..10000 us): the loop thread waits up
   * to `loopPollUs` for a worker's completion before it blocks in libuv's poll (in the
   * prepare phase; it stops early when other I/O is ready or a timer is due), and one
   * worker at a time looks up to `workerSpinUs` for the next request before it sleeps.
   */
  setPolling(loopPollUs: number, workerSpinUs: number): void;
  /**
   * What the loop thread's polling did so far: prepare phases that looked for a completion
   * (one was ready, or it spun for one), those that saw one, microseconds spent spinning,
   * and spins cut short because other I/O was ready (a due timer ends a spin by
   * shortening it, not counted there). A turn with other I/O ready at once is no poll.
   */
  pollStats(): [polls: number, hits: number, spentUs: number, cutShort: number];
  /** Stops and joins the workers; queued requests are dropped without completions. */
  destroy(): void;
  /** Workers alive or starting. */
  readonly threads: number;
  /** Workers waiting for work. */
  readonly idleThreads: number;
  /** The most workers alive at once so far. */
  readonly peakThreads: number;
  /** The errno name (e.g. "EPERM") of the first worker refused its policy (scheduling); undefined when none was. */
  readonly schedulingError: string | undefined;
  /**
   * The CPUs every worker may run on (sched_setaffinity), from its next request on; sleeping
   * workers are woken to move. Empty: the affinity of the thread that made the pool. CPU
   * numbers must be < 1024 (ERR_OUT_OF_RANGE).
   */
  setWorkerCpus(cpus: Uint32Array): void;
  /** The errno name (e.g. "EINVAL") of the first worker refused its CPU set; undefined when none was. */
  readonly affinityError: string | undefined;
  /** Requests queued that no worker has taken. */
  readonly queued: number;
  /** Requests submitted and not yet delivered or cancelled. */
  readonly inFlight: number;
}

/** The native ThreadPool class. */
export interface ThreadPoolConstructor {
  /** `onComplete(count)`: the first `count` completions of `config.completions` are ready. */
  new (config: ThreadPoolConfig, onComplete: (count: number) => void): ThreadPoolInstance;
  readonly layout: BatchLayout;
}

/** The thread pool part of the addon (src/aio/threadpool). */
export interface ThreadPoolBinding {
  readonly ThreadPool: ThreadPoolConstructor;
}
