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

/** How the workers-per-request ceiling moves (ThreadPoolOptions' numbers). */
export interface CeilingPolicy {
  /** Workers per request in flight at the start (threadsPerInFlight). */
  readonly start: number;
  /** The most it rises to (maxThreadsPerInFlight). */
  readonly max: number;
  /** Rise only while fewer than this share of a window's requests had to wake a sleeping worker. */
  readonly riseBelowSleptShare: number;
  /** ... and while the loop thread was busy less than this share of the window's time. */
  readonly riseBelowLoopBusy: number;
  /** Fall (down to start) when more than this share of a window's requests woke a worker. */
  readonly fallAboveSleptShare: number;
  /** A rise is kept only when the window after it completed requests faster by at least this share than the one before (keepRiseWhenFasterBy; -1 keeps every rise). */
  readonly keepRiseWhenFasterBy: number;
}

/** Worker completions judged together. */
export const CEILING_WINDOW = 4096;
/** How far the ceiling moves per window: 2 workers at 32 in flight. */
export const CEILING_STEP = 1 / 16;
/** After a rise that did not pay, windows before the next try: doubling from 1 up to this. */
export const CEILING_MAX_HOLD_WINDOWS = 64;

/**
 * The workers-per-request ceiling of workersToAdd, found while running. Too few workers
 * leave requests queued (not at the device); too many sleep between requests, and each
 * request then pays a wake-up (on 2 cores at 32 in flight, a ~80k IOPS disk: 16 workers,
 * 1% of requests woke a worker; 20, 6%; 24, 33%; 28, 60%; 32, 71%; IOPS peaked at 20).
 * Which count is best depends on the device's latency against the loop's round trip, so
 * the ceiling starts at `start` and tries a rise while requests almost never find a
 * sleeping worker (they queue: the workers are the limit) and the loop thread has time to
 * spare (on a CPU-bound loop more threads only take its CPU). A rise is a trial: it stays
 * only if the next window completed requests faster than the one before it by
 * keepRiseWhenFasterBy; else the ceiling steps back (the pool trims the workers it added)
 * and waits 1, 2, 4 ... CEILING_MAX_HOLD_WINDOWS windows before trying again (workers with
 * their wakes local to the device's interrupts sleep little even past the best count:
 * judged by sleeps alone the ceiling rose to 0.875 where 0.625 was 35% faster). It falls
 * when many requests woke a worker. Windows are CEILING_WINDOW requests at one worker count
 * (a window that saw workers join or leave starts again), so each judges the count it ran
 * at. Counts only requests that did I/O on a worker: page-cache copies never grow the pool.
 */
export class WorkerCeiling {
  readonly #policy: CeilingPolicy;
  #value: number;
  #seen = 0;
  #slept = 0;
  #mostInFlight = 0;
  /** The workers alive when this window began: a window that saw the count change is not judged. */
  #windowThreads = -1;
  #windowStartMs = 0;
  /** The rise being judged: the value before it and the completion rate there (per ms). */
  #trial: { readonly from: number; readonly rate: number } | undefined;
  /** Windows to let pass before the next rise, and what the next refusal holds for. */
  #holdWindows = 0;
  #nextHold = 1;

  constructor(policy: CeilingPolicy) {
    this.#policy = policy;
    this.#value = policy.start;
  }

  /** Workers per request in flight the pool may grow to now. */
  get value(): number {
    return this.#value;
  }

  /**
   * Counts one request a worker served (`inFlight`: the pool's requests in flight then;
   * `nowMs`: a monotonic clock). At the end of a window: falls by CEILING_STEP (down to
   * start) when many requests woke a worker; judges a trial rise (kept when faster, else
   * undone); or tries a rise by CEILING_STEP (up to max) when the ceiling is what bounds the
   * pool (`threads` reached it for the window's most requests in flight), few requests woke
   * a worker and `loopBusy()` (the loop thread's busy share since the last window) is below
   * the bound. A fall or an undone rise returns the workers to keep.
   */
  record(workerSlept: boolean, inFlight: number, threads: number, loopBusy: () => number, nowMs: number): number | undefined {
    if (threads !== this.#windowThreads) this.#restart(threads, nowMs);
    this.#seen++;
    if (workerSlept) this.#slept++;
    if (inFlight > this.#mostInFlight) this.#mostInFlight = inFlight;
    if (this.#seen < CEILING_WINDOW) return undefined;
    const sleptShare = this.#slept / this.#seen;
    const rate = this.#seen / Math.max(nowMs - this.#windowStartMs, 1e-3);
    const mostInFlight = this.#mostInFlight;
    const bound = threads >= Math.ceil(mostInFlight * this.#value);
    this.#restart(threads, nowMs);
    const busy = loopBusy();
    const trial = this.#trial;
    this.#trial = undefined;
    if (sleptShare > this.#policy.fallAboveSleptShare && this.#value > this.#policy.start) {
      this.#value = Math.max(this.#policy.start, this.#value - CEILING_STEP);
      this.#nextHold = 1;
      return Math.ceil(mostInFlight * this.#value);
    }
    if (trial !== undefined) {
      if (rate >= trial.rate * (1 + this.#policy.keepRiseWhenFasterBy)) {
        this.#nextHold = 1;
      } else {
        this.#value = trial.from;
        this.#holdWindows = this.#nextHold;
        this.#nextHold = Math.min(CEILING_MAX_HOLD_WINDOWS, this.#nextHold * 2);
        return Math.ceil(mostInFlight * this.#value);
      }
    }
    if (this.#holdWindows > 0) {
      this.#holdWindows--;
      return undefined;
    }
    if (bound && this.#value < this.#policy.max && sleptShare < this.#policy.riseBelowSleptShare && busy < this.#policy.riseBelowLoopBusy) {
      this.#trial = { from: this.#value, rate };
      this.#value = Math.min(this.#policy.max, this.#value + CEILING_STEP);
    }
    return undefined;
  }

  #restart(threads: number, nowMs: number): void {
    this.#seen = 0;
    this.#slept = 0;
    this.#mostInFlight = 0;
    this.#windowThreads = threads;
    this.#windowStartMs = nowMs;
  }
}
