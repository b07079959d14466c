import { ColdReadMeter, type ColdReadPolicy } from '@vmlink/aio';
import { withinCopyTime, type CopyTiming } from './policy.js';

/** Fds remembered at most; past this the map starts over (a forgotten fd starts cold again). */
const MAX_TRACKED_FDS = 4096;
/** An fd whose reads are never tried on the loop: O_DIRECT (NOWAIT still waits for the disk there). */
const NEVER = 'never';
/** What a read served in the hand-over call is assumed to cost before one was measured, us. */
const FIRST_COST_ESTIMATE_US = 4;

/** How a read goes to the pool: tried in the hand-over call, a cache-first read on a worker, or a plain one. */
export type ReadRoute = 'here' | 'cacheFirst' | 'plain';

export interface LoopReadOptions extends CopyTiming {
  /** Microseconds of reads in one hand-over call (one per loop tick) at most, by their measured cost. */
  readonly budgetUs: number;
  readonly policy: ColdReadPolicy;
}

/** How a read marked 'here' ended, from its completion's flags. */
export interface HereOutcome {
  /** The page cache served it in the hand-over call. */
  readonly served: boolean;
  /** RWF_NOWAIT said EAGAIN: a worker read it. */
  readonly missed: boolean;
  /** The fd is O_DIRECT: never try it again. */
  readonly directFd: boolean;
  readonly bytes: number;
  readonly serviceUs: number;
}

/**
 * Which reads the pool serves on the loop thread, in the call that hands a tick's requests
 * to the workers (the native op readCachedHere: preadv2 with RWF_NOWAIT, which copies from
 * the page cache or says EAGAIN, never waiting for the disk; what misses goes on to a
 * worker in the same call). A cache hit is a ~2 us copy; a worker costs two thread
 * wake-ups (~20 us each on this VM). What keeps the loop free:
 * - per fd, a ColdReadMeter (the io_submit backend's): a file starts on the workers, whose
 *   cache-first reads report hits, and only a window of hits lets it be read here; a
 *   window with missesToCool misses (EAGAIN, or a read slower than a copy) sends it back
 *   to the workers for a pause that doubles each time;
 * - a time budget per hand-over call: reads are marked while their measured cost (a moving
 *   average) fits in budgetUs; the rest go to the workers;
 * - never on O_DIRECT fds (the native op refuses them and says so; the fd is remembered).
 * Completions of reads served here arrive in the loop turn's check phase (where
 * setImmediate callbacks run; no thread wake-up to pay for), so a chain of awaited reads
 * lets the loop turn, timers and I/O included, between links.
 * Pure logic: the caller asks route() per read and reports each 'here' read's outcome.
 */
export class LoopReads {
  readonly #options: LoopReadOptions;
  readonly #files = new Map<number, ColdReadMeter | typeof NEVER>();
  #costUs = FIRST_COST_ESTIMATE_US;
  #markedUs = 0;
  /** Reads served in the hand-over call (for stats and tests). */
  served = 0;
  /** Reads tried there that the page cache could not serve (EAGAIN). */
  missed = 0;

  constructor(options: LoopReadOptions) {
    this.#options = options;
  }

  /** The fd's meter, or undefined when its reads are never tried here. */
  meterFor(fd: number): ColdReadMeter | undefined {
    let meter = this.#files.get(fd);
    if (meter === undefined) {
      if (this.#files.size >= MAX_TRACKED_FDS) this.#files.clear();
      meter = new ColdReadMeter(this.#options.policy, { fallbackReports: true });
      this.#files.set(fd, meter);
    }
    return meter === NEVER ? undefined : meter;
  }

  /** Where this read of a metered file goes (counts it in the meter and the budget). */
  route(meter: ColdReadMeter): ReadRoute {
    // The first read of a call always fits (budget > 0): otherwise one preempted read, by
    // raising the cost estimate above the budget, would stop every later one from being
    // tried, and only tried reads bring the estimate back down.
    const fits = this.#markedUs === 0 ? this.#options.budgetUs > 0 : this.#markedUs + this.#costUs <= this.#options.budgetUs;
    if (fits && !meter.skipNowait()) {
      this.#markedUs += this.#costUs;
      return 'here';
    }
    return meter.cold ? 'cacheFirst' : 'plain';
  }

  /** The tick's requests were handed over: a new budget for the next call. */
  handedOver(): void {
    this.#markedUs = 0;
  }

  /** Reports how a read routed 'here' ended. */
  settle(fd: number, meter: ColdReadMeter, outcome: HereOutcome): void {
    if (outcome.directFd) {
      this.#files.set(fd, NEVER);
      return;
    }
    if (outcome.missed) {
      this.missed++;
      meter.record(false);
      return;
    }
    if (!outcome.served) return; // a part (or an error): the worker's read answered; no verdict
    this.served++;
    // A sample is at most the budget: a read preempted for milliseconds says little about the next.
    this.#costUs += (Math.min(outcome.serviceUs, this.#options.budgetUs) - this.#costUs) / 16;
    meter.record(outcome.bytes === 0 || withinCopyTime(outcome.serviceUs, outcome.bytes, this.#options));
  }
}
