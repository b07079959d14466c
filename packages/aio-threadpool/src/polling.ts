/**
 * When the pool polls instead of sleeping: QEMU's adaptive polling, decided here, carried
 * out by the addon (LoopPoller and the workers' spin in native/src/aio/threadpool).
 *
 * With few requests in flight every request crosses two sleeping threads (the loop thread
 * hands it to a worker, the worker hands its completion back), and on a VM whose idle
 * vCPUs halt each wake-up costs ~20 us: at 2 in flight the pool made half of fio psync
 * numjobs=2's IOPS. Polling removes both wake-ups: the loop thread waits for a completion
 * a little before it blocks, a worker for the next request before it sleeps. It costs CPU
 * while it waits, so it runs only where it pays: few requests in flight (with more, the
 * workers never run dry and spinners would take the CPU their completions need), and only
 * while most waits see a completion in time (a slow device makes every wait a loss).
 * Pure logic, unit-tested in test/polling.test.ts.
 */

export interface PollingPolicy {
  /** Microseconds the loop thread (and a worker) waits before sleeping; 0 never polls. */
  readonly pollUs: number;
  /** Poll only while at most this many requests are in flight. */
  readonly maxInFlight: number;
  /** Stop polling when a window's waits saw a completion in time less often than this share. */
  readonly minHitShare: number;
}

/** What the loop thread's polling did so far (the addon's pollStats()). */
export interface PollCounts {
  readonly polls: number;
  readonly hits: number;
}

/** Completions between two looks at the hit share while polling. */
export const POLL_WINDOW = 256;
/** Fewer waits than this in a window say nothing about the hit share (too few to judge). */
export const POLL_MIN_SAMPLES = 64;
/** After a window of mostly lost waits: this many windows' worth of completions without polling before it is tried again. */
export const POLL_BACKOFF_WINDOWS = 16;

export class Polling {
  readonly #policy: PollingPolicy;
  readonly #readCounts: () => PollCounts;
  #on = false;
  #sinceJudged = 0;
  #backoffLeft = 0;
  #last: PollCounts = { polls: 0, hits: 0 };

  /** `readCounts` reads the addon's counters (a native call: once per window at most). */
  constructor(policy: PollingPolicy, readCounts: () => PollCounts) {
    this.#policy = policy;
    this.#readCounts = readCounts;
  }

  /** Whether polling is on now. */
  get on(): boolean {
    return this.#on;
  }

  /**
   * After a hand-over, with `inFlight` requests in the pool now (what the loop thread will
   * wait for): the poll microseconds to set when the decision changes (0 turns it off),
   * else undefined. Only hand-overs turn it on or off by depth: deciding on completions
   * too would flip it per batch (a batch settles, then its continuations hand over again).
   */
  submitted(inFlight: number): number | undefined {
    const want = this.#policy.pollUs > 0 && this.#backoffLeft <= 0 && inFlight <= this.#policy.maxInFlight;
    if (want === this.#on) return undefined;
    this.#on = want;
    if (want) {
      // A new stretch of polling is judged on its own waits only.
      this.#last = this.#readCounts();
      this.#sinceJudged = 0;
    }
    return want ? this.#policy.pollUs : 0;
  }

  /** After `count` completions were delivered: 0 when a window of mostly missed waits turns polling off, else undefined. */
  completed(count: number): number | undefined {
    if (this.#backoffLeft > 0) {
      this.#backoffLeft -= count;
      return undefined;
    }
    if (!this.#on || !this.#judge(count)) return undefined;
    this.#on = false;
    return 0;
  }

  /** Counts `completed` toward the window; at its end, true when it was mostly misses (backing off starts). */
  #judge(completed: number): boolean {
    this.#sinceJudged += completed;
    if (this.#sinceJudged < POLL_WINDOW) return false;
    this.#sinceJudged = 0;
    const counts = this.#readCounts();
    const polls = counts.polls - this.#last.polls;
    const hits = counts.hits - this.#last.hits;
    this.#last = counts;
    if (polls < POLL_MIN_SAMPLES || hits / polls >= this.#policy.minHitShare) return false;
    this.#backoffLeft = POLL_WINDOW * POLL_BACKOFF_WINDOWS;
    return true;
  }
}

/**
 * The loop thread's busy share over a stretch of `activeMs` + `idleMs` (its event-loop
 * utilization), not counting `pollMs` spent polling: libuv counts that wait as work, and
 * the worker ceiling (policy.ts) must not read a waiting loop as a busy one.
 */
export function busyShare(activeMs: number, idleMs: number, pollMs: number): number {
  const total = activeMs + idleMs;
  if (!(total > 0)) return 0;
  return Math.min(1, Math.max(0, activeMs - pollMs) / total);
}
