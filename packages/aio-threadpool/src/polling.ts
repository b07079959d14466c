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
 *
 * One exception for the loop thread: while the workers are held off one of the process's
 * CPUs (workerCpus), its wait takes nothing from them, so it polls at any depth. At 32 in
 * flight on this 2-vCPU VM (workers on the disk's interrupt CPU, the loop on the other) that
 * spares the workers' CPU the eventfd wake-up of a halted loop thread per completion batch,
 * and the batch its hand-back latency: 117k-140k IOPS without, 161k-178k with (fio psync
 * numjobs=32: 172k-178k in the same minutes), for some 0.4 cores of spinning. The workers'
 * own spin stays limited to few in flight: at depth, a spinner shares the held CPUs.
 * Pure logic, unit-tested in test/polling.test.ts.
 */

export interface PollingPolicy {
  /** Microseconds the loop thread (and a worker) waits before sleeping; 0 never polls. */
  readonly pollUs: number;
  /** Poll only while at most this many requests are in flight. */
  readonly maxInFlight: number;
  /** Stop polling when a window's waits saw a completion in time less often than this share. */
  readonly minHitShare: number;
  /** The loop thread polls at any depth while the workers are held off one of the process's CPUs (workersHeld). */
  readonly loopAtAnyDepthWhenWorkersHeld: boolean;
}

/** What the addon is told to do (setPolling): microseconds the loop thread, and one worker, wait before sleeping (0: not at all). */
export interface PollSetting {
  readonly loopUs: number;
  readonly workerUs: number;
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
  #workersSpin = false;
  #workersHeld = false;
  #sinceJudged = 0;
  #backoffLeft = 0;
  #last: PollCounts = { polls: 0, hits: 0 };

  /** `readCounts` reads the addon's counters (a native call: once per window at most). */
  constructor(policy: PollingPolicy, readCounts: () => PollCounts) {
    this.#policy = policy;
    this.#readCounts = readCounts;
  }

  /** Whether the loop thread polls now. */
  get on(): boolean {
    return this.#on;
  }

  /** Whether a worker spins for the next request now. */
  get workersSpin(): boolean {
    return this.#workersSpin;
  }

  /**
   * Whether the workers are held to CPUs that leave out one of the process's (workerCpus),
   * so that the loop thread has a CPU they do not use. Takes effect at the next hand-over.
   */
  set workersHeld(held: boolean) {
    this.#workersHeld = held;
  }

  /**
   * After a hand-over, with `inFlight` requests in the pool now (what the loop thread will
   * wait for): the setting when the decision changes, else undefined. Only hand-overs turn
   * it on or off by depth: deciding on completions too would flip it per batch (a batch
   * settles, then its continuations hand over again).
   */
  submitted(inFlight: number): PollSetting | undefined {
    const { pollUs, maxInFlight, loopAtAnyDepthWhenWorkersHeld } = this.#policy;
    const may = pollUs > 0 && this.#backoffLeft <= 0;
    const few = inFlight <= maxInFlight;
    const loop = may && (few || (loopAtAnyDepthWhenWorkersHeld && this.#workersHeld));
    const workers = may && few;
    if (loop === this.#on && workers === this.#workersSpin) return undefined;
    if (loop && !this.#on) {
      // A new stretch of polling is judged on its own waits only.
      this.#last = this.#readCounts();
      this.#sinceJudged = 0;
    }
    this.#on = loop;
    this.#workersSpin = workers;
    return { loopUs: loop ? pollUs : 0, workerUs: workers ? pollUs : 0 };
  }

  /** After `count` completions were delivered: all off when a window of mostly missed waits turns polling off, else undefined. */
  completed(count: number): PollSetting | undefined {
    if (this.#backoffLeft > 0) {
      this.#backoffLeft -= count;
      return undefined;
    }
    if (!this.#on || !this.#judge(count)) return undefined;
    this.#on = false;
    this.#workersSpin = false;
    return { loopUs: 0, workerUs: 0 };
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
