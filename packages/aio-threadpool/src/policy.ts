/**
 * The pool's decisions, as pure functions of what the native pool reports: whether a
 * request finished within a page-cache copy's time, and when to add workers. Unit-tested
 * in test/policy.test.ts; their numbers are ThreadPoolOptions.
 */

export interface CopyTiming {
  /** Fixed cost of a cached request, microseconds. */
  readonly cachedBaseUs: number;
  /** Copy speed a cache hit beats, bytes per microsecond. */
  readonly cachedBytesPerUs: number;
}

/** True when a request moving `bytes` took no longer than a page-cache copy would. */
export function withinCopyTime(serviceUs: number, bytes: number, timing: CopyTiming): boolean {
  return serviceUs <= timing.cachedBaseUs + bytes / timing.cachedBytesPerUs;
}

/**
 * A cache-first read was served by the page cache: its RWF_NOWAIT attempt brought it all
 * (`nowaitServed`), and in a copy's time. 0 at EOF waited for nothing (the size is in the
 * inode): cached however long the worker was preempted. The time matters because on a
 * host-cached virtual disk a NOWAIT read of an uncached page can succeed after the I/O.
 */
export function servedFromCache(nowaitServed: boolean, bytes: number, serviceUs: number, timing: CopyTiming): boolean {
  return nowaitServed && (bytes === 0 || withinCopyTime(serviceUs, bytes, timing));
}

/** The share of recent completions that were slow (did I/O): a moving average over ~8 of them. */
export class SlowShare {
  #share = 0;

  record(slow: boolean): void {
    this.#share += ((slow ? 1 : 0) - this.#share) / 8;
  }

  get value(): number {
    return this.#share;
  }
}

export interface PoolLoad {
  /** Workers alive (or starting). */
  readonly threads: number;
  /** Workers waiting for work. */
  readonly idleThreads: number;
  /** Requests queued that no worker has taken. */
  readonly queued: number;
  /** Requests handed to the pool and not yet delivered back (queued, running or done). */
  readonly inFlight: number;
  readonly maxThreads: number;
  /** Workers per request in flight the pool grows to at most (see ThreadPoolOptions.threadsPerInFlight). */
  readonly threadsPerInFlight: number;
}

/**
 * How many workers to add after a submit. QEMU's rule: requests wait and no worker is
 * idle, up to maxThreads. But only while requests block (the slow share reaches
 * growWhenSlowShare): page-cache hits are CPU work, and on 2 cores more threads than
 * cores only add context switches. A pool with no worker always gets one. Never more
 * workers than threadsPerInFlight x the requests in flight (rounded up): a worker that
 * finds the next request already queued never sleeps, while one per request sleeps after
 * each and costs a wake-up (and a scheduling delay) per request; and workers still
 * starting are neither idle nor busy, so the queue can look unserved while they start.
 */
export function workersToAdd(load: PoolLoad, slowShare: number, growWhenSlowShare: number): number {
  const waiting = load.queued - load.idleThreads;
  if (waiting <= 0) return 0;
  const room = Math.max(0, Math.min(load.maxThreads, Math.ceil(load.inFlight * load.threadsPerInFlight)) - load.threads);
  if (slowShare < growWhenSlowShare) return load.threads === 0 ? Math.min(1, room) : 0;
  return Math.min(waiting, room);
}
