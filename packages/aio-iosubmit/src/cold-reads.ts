/**
 * Cold-file detection for buffered reads. A RWF_NOWAIT read that misses the page cache
 * says EAGAIN, but only after the kernel has started readahead for it inside io_submit
 * (page allocation, bio submission, a wait for a free request tag when the device queue
 * is full): on a file that keeps missing, every miss costs the event loop that time and
 * the read still goes to the fallback afterwards. So a file whose NOWAIT reads mostly
 * miss sends its buffered reads straight to the fallback for a while, then probes again;
 * while the probes keep finding a cold file the pause doubles (up to a cap).
 *
 * When the fallback can say whether the page cache served a read (the thread pool's
 * readvCacheFirst), no probe goes through io_submit at all: a cold file stays with the
 * fallback until a window of its reads there comes back from the cache.
 * Pure logic: the caller reports hits and misses and asks before each read.
 */
export interface ColdReadPolicy {
  /** NOWAIT reads per probe window. */
  readonly window: number;
  /** Misses in one window (of `window`) that make the file cold. */
  readonly missesToCool: number;
  /** Reads sent to the fallback after the first cold window; doubles per cold window. */
  readonly firstPause: number;
  /** The longest pause, in reads. */
  readonly maxPause: number;
}

export const DEFAULT_COLD_READ_POLICY: ColdReadPolicy = Object.freeze({ window: 32, missesToCool: 16, firstPause: 256, maxPause: 4096 });

export class ColdReadMeter {
  readonly #policy: ColdReadPolicy;
  readonly #fallbackReports: boolean;
  #probed = 0;
  #missed = 0;
  #pauseLeft = 0;
  #nextPause: number;

  /**
   * `fallbackReports`: the caller reports how its reads on the fallback ended
   * (recordFallback), so a cold file needs no NOWAIT probe to be seen warm again.
   */
  constructor(policy: ColdReadPolicy = DEFAULT_COLD_READ_POLICY, { fallbackReports = false }: { fallbackReports?: boolean } = {}) {
    this.#policy = policy;
    this.#fallbackReports = fallbackReports;
    this.#nextPause = policy.firstPause;
  }

  /** True when this read should skip NOWAIT and go to the fallback (counts the read). */
  skipNowait(): boolean {
    if (this.#pauseLeft === 0) return false;
    if (!this.#fallbackReports) this.#pauseLeft--;
    return true;
  }

  /**
   * Reports how a read of a cold file ended on the fallback: `hit` = the page cache served
   * it whole. A window with fewer than missesToCool misses makes the file warm again.
   */
  recordFallback(hit: boolean): void {
    if (this.#pauseLeft === 0) return; // a read that started before the file warmed up
    this.#probed++;
    if (!hit) this.#missed++;
    if (this.#probed < this.#policy.window) return;
    if (this.#missed < this.#policy.missesToCool) this.#pauseLeft = 0;
    this.#probed = 0;
    this.#missed = 0;
  }

  /** Reports how a NOWAIT read ended: `hit` = served whole from the page cache. */
  record(hit: boolean): void {
    if (this.#pauseLeft > 0) return; // a read that started before the file went cold
    this.#probed++;
    if (!hit) this.#missed++;
    if (this.#probed < this.#policy.window) return;
    if (this.#missed >= this.#policy.missesToCool) {
      this.#pauseLeft = this.#nextPause;
      this.#nextPause = Math.min(this.#nextPause * 2, this.#policy.maxPause);
    } else {
      this.#nextPause = this.#policy.firstPause;
    }
    this.#probed = 0;
    this.#missed = 0;
  }

  /** Whether reads are being sent to the fallback now (for stats and tests). */
  get cold(): boolean {
    return this.#pauseLeft > 0;
  }
}
