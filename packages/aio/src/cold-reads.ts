import { outOfRange, validateInteger, validateObject } from '@vmlink/errors';

/**
 * Cold-file detection for buffered reads, shared by the two backends that read the page
 * cache from the loop thread: the io_submit backend (RWF_NOWAIT inside io_submit) and the
 * thread pool (preadv2 RWF_NOWAIT on the loop, pool-io.ts). A RWF_NOWAIT read that misses the page cache
 * says EAGAIN, but only after the kernel has started readahead for it inside io_submit
 * (page allocation, bio submission, a wait for a free request tag when the device queue
 * is full): every miss can cost the event loop that time, and the read still goes to the
 * fallback afterwards. So a file whose NOWAIT reads miss too often sends its buffered
 * reads straight to the fallback for a pause (counted in reads) that doubles, up to a
 * cap, each time the file is found cold again.
 *
 * How a pause ends depends on what the fallback can tell:
 * - It reports whether the page cache served each read (the thread pool's
 *   readvCacheFirst; `fallbackReports`): when the pause is over, the file goes back to
 *   io_submit only if the last window of its fallback reads had fewer than missesToWarm
 *   misses; otherwise a longer pause starts. No probe ever goes through io_submit, and a
 *   file starts cold: its first window of reads goes to the fallback, so that not even
 *   the first reads of a cold file start readahead inside io_submit.
 * - It does not: after the pause, a window of NOWAIT reads in io_submit is the probe.
 * Pure logic: the caller reports hits and misses and asks before each read.
 */
export interface ColdReadPolicy {
  /** Reads per window (NOWAIT reads while warm, fallback reads while cold). */
  readonly window: number;
  /** Misses in a window of NOWAIT reads that make the file cold. */
  readonly missesToCool: number;
  /** A window of fallback reads with fewer misses than this lets the file go warm (fallbackReports). */
  readonly missesToWarm: number;
  /** Reads sent to the fallback after the first cold window; doubles per cold window. */
  readonly firstPause: number;
  /** The longest pause, in reads. */
  readonly maxPause: number;
}

// Cooling at 4 misses of 32 (not half): a miss costs the loop far more in io_submit than
// a hit costs on the thread pool, so a mostly-warm file with steady misses is better off
// on the pool. Warming needs a window with at most one miss.
export const DEFAULT_COLD_READ_POLICY: ColdReadPolicy = Object.freeze({ window: 32, missesToCool: 4, missesToWarm: 2, firstPause: 256, maxPause: 4096 });

export class ColdReadMeter {
  readonly #policy: ColdReadPolicy;
  readonly #fallbackReports: boolean;
  // The current window (NOWAIT reads while warm, fallback reads while cold).
  #seen = 0;
  #missed = 0;
  /** Reads left in the current pause: the file is cold while this is above 0. */
  #pauseLeft = 0;
  #nextPause: number;
  /** The last full window of fallback reads had fewer than missesToWarm misses. */
  #fallbackWarm = false;

  /**
   * `fallbackReports`: the caller reports how its reads on the fallback ended
   * (recordFallback), so a cold file needs no NOWAIT probe to be seen warm again.
   */
  constructor(policy: ColdReadPolicy = DEFAULT_COLD_READ_POLICY, { fallbackReports = false }: { fallbackReports?: boolean } = {}) {
    this.#policy = policy;
    this.#fallbackReports = fallbackReports;
    this.#nextPause = policy.firstPause;
    if (fallbackReports) this.#pauseLeft = policy.window;
  }

  /** True when this read should skip NOWAIT and go to the fallback (counts the read). */
  skipNowait(): boolean {
    if (this.#pauseLeft === 0) return false;
    this.#pauseLeft--;
    if (this.#pauseLeft === 0) {
      // Still cold by the fallback's reports: a longer pause. Otherwise warm by them, or
      // time for a window of NOWAIT probes.
      if (this.#fallbackReports && !this.#fallbackWarm) this.#startPause();
      else this.#resetWindow();
    }
    return true;
  }

  /** Reports how a read of a cold file ended on the fallback: `hit` = the page cache served it whole. */
  recordFallback(hit: boolean): void {
    if (this.#pauseLeft === 0) return; // a read that started before the file went warm
    this.#seen++;
    if (!hit) this.#missed++;
    if (this.#seen < this.#policy.window) return;
    this.#fallbackWarm = this.#missed < this.#policy.missesToWarm;
    this.#resetWindow();
  }

  /** Reports how a NOWAIT read ended: `hit` = served whole from the page cache. */
  record(hit: boolean): void {
    if (this.#pauseLeft > 0) return; // a read that started before the file went cold
    this.#seen++;
    if (!hit) this.#missed++;
    if (this.#seen < this.#policy.window) return;
    if (this.#missed >= this.#policy.missesToCool) {
      this.#fallbackWarm = false;
      this.#startPause();
    } else {
      this.#nextPause = this.#policy.firstPause;
    }
    this.#resetWindow();
  }

  /** Whether reads are being sent to the fallback now (for stats and tests). */
  get cold(): boolean {
    return this.#pauseLeft > 0;
  }

  #startPause(): void {
    this.#pauseLeft = this.#nextPause;
    this.#nextPause = Math.min(this.#nextPause * 2, this.#policy.maxPause);
  }

  #resetWindow(): void {
    this.#seen = 0;
    this.#missed = 0;
  }
}

const MAX_PAUSE_OR_WINDOW = 1 << 24;

/** The cold-read meter's policy: the defaults overlaid with `overrides`, checked. */
export function validateColdReadPolicy(overrides: unknown): ColdReadPolicy {
  validateObject(overrides, 'options.coldReads');
  const policy = { ...DEFAULT_COLD_READ_POLICY, ...(overrides as Partial<ColdReadPolicy>) };
  for (const key of Object.keys(overrides) as (keyof ColdReadPolicy)[]) {
    if (!Object.hasOwn(DEFAULT_COLD_READ_POLICY, key)) throw outOfRange('options.coldReads', `fields among ${Object.keys(DEFAULT_COLD_READ_POLICY).join(', ')}`, key);
  }
  validateInteger(policy.window, 'options.coldReads.window', 1, MAX_PAUSE_OR_WINDOW);
  validateInteger(policy.missesToCool, 'options.coldReads.missesToCool', 1, policy.window);
  validateInteger(policy.missesToWarm, 'options.coldReads.missesToWarm', 1, policy.window);
  validateInteger(policy.firstPause, 'options.coldReads.firstPause', 1, MAX_PAUSE_OR_WINDOW);
  validateInteger(policy.maxPause, 'options.coldReads.maxPause', policy.firstPause, MAX_PAUSE_OR_WINDOW);
  return Object.freeze(policy);
}
