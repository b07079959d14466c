import { ColdReadMeter, type ColdReadPolicy, type Position } from '@vmlink/aio';
import type { NativeBinding } from '@vmlink/native';
import { withinCopyTime, type CopyTiming } from './policy.js';

const EAGAIN = 11;
const EOPNOTSUPP = 95;
/** Fds remembered at most; past this the map starts over (a forgotten fd is probed again). */
const MAX_TRACKED_FDS = 4096;
/** An fd whose reads never run on the loop: O_DIRECT (NOWAIT still waits for the disk there) or no NOWAIT support. */
const NEVER = 'never';

/** What readOnLoop did: the bytes it read (>= 0), or that the pool must read. */
export const NOT_SERVED = -1;

export interface LoopReadOptions extends CopyTiming {
  /** Microseconds of reads on the loop thread per loop turn; the rest go to the workers. */
  readonly budgetUs: number;
  readonly policy: ColdReadPolicy;
}

/**
 * Reads that the page cache can serve, done on the loop thread with preadv2(RWF_NOWAIT):
 * a cache hit is a 4 KiB copy (~2 us), where a hand-over to a worker costs two thread
 * wake-ups (~20 us each on this VM). What keeps the loop free:
 * - per fd, a ColdReadMeter (as the io_submit backend's): a file starts cold, its reads go
 *   to the workers as cache-first reads that report hits, and only a window of hits lets
 *   it read here; a window with missesToCool misses (EAGAIN, or a read slower than a
 *   copy) sends it back to the workers for a pause that doubles each time;
 * - a time budget per loop turn: once spent, reads go to the workers until the loop
 *   turns, so a chain of awaited hits cannot starve timers and sockets;
 * - never on O_DIRECT fds, found by one empty probe per fd.
 * Partial reads (part cached, or end of file) are not served: the worker reads it all
 * again (a read is idempotent).
 */
export class LoopReads {
  readonly #readCachedNow: NativeBinding['readCachedNow'];
  readonly #options: LoopReadOptions;
  readonly #files = new Map<number, ColdReadMeter | typeof NEVER>();
  #spentUs = 0;
  #resetScheduled = false;
  /** Reads served on the loop thread (for stats and tests). */
  served = 0;
  /** Reads tried on the loop that the cache could not serve (EAGAIN). */
  missed = 0;

  constructor(binding: Pick<NativeBinding, 'readCachedNow'>, options: LoopReadOptions) {
    this.#readCachedNow = binding.readCachedNow;
    this.#options = options;
  }

  /**
   * The fd's meter, or undefined when its reads never run here. Only for reads that go
   * to the workers: `meter.cold` says whether to report their cache outcome.
   */
  meterFor(fd: number): ColdReadMeter | undefined {
    let meter = this.#files.get(fd);
    if (meter === undefined) {
      if (this.#files.size >= MAX_TRACKED_FDS) this.#files.clear();
      // An empty read: only the fd checks run (EBADF, O_DIRECT, NOWAIT support).
      const probe = this.#readCachedNow(fd, [], 0);
      if (probe === -EOPNOTSUPP) meter = NEVER;
      else if (probe < 0) return undefined; // a bad fd: the worker's read reports it
      else meter = new ColdReadMeter(this.#options.policy, { fallbackReports: true });
      this.#files.set(fd, meter);
    }
    return meter === NEVER ? undefined : meter;
  }

  /**
   * Reads on the loop thread if the file is warm and the turn has time left: the bytes
   * read, or NOT_SERVED (then the pool reads it; `meter.cold` says how).
   */
  readOnLoop(fd: number, buffers: readonly Uint8Array[], position: Position, meter: ColdReadMeter, wanted: number): number {
    if (this.#spentUs >= this.#options.budgetUs) return NOT_SERVED;
    if (meter.skipNowait()) return NOT_SERVED;
    const started = performance.now();
    const result = this.#readCachedNow(fd, buffers.length === 1 ? buffers[0]! : buffers, position);
    const tookUs = (performance.now() - started) * 1000;
    this.#spend(tookUs);
    if (result === -EOPNOTSUPP) {
      this.#files.set(fd, NEVER); // the fd number now names an O_DIRECT file
      return NOT_SERVED;
    }
    if (result === -EAGAIN) {
      this.missed++;
      meter.record(false);
      return NOT_SERVED;
    }
    // Other errors and short reads: the worker's read gives the answer (and the errno).
    if (result < 0 || (result > 0 && result < wanted)) return NOT_SERVED;
    meter.record(result === 0 || withinCopyTime(tookUs, result, this.#options));
    this.served++;
    return result;
  }

  #spend(us: number): void {
    this.#spentUs += us;
    if (this.#resetScheduled) return;
    this.#resetScheduled = true;
    setImmediate(() => {
      this.#spentUs = 0;
      this.#resetScheduled = false;
    }).unref();
  }
}
