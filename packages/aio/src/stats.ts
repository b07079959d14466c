import { LogHistogram } from './histogram.js';
import type { AioStats } from './types.js';

/**
 * Counters and histograms behind `AioBackend.stats()`. A backend (or an FdIo) owns one
 * and reports each event as it happens; `snapshot()` makes an immutable AioStats.
 * Times are in microseconds.
 */
export class StatsRecorder {
  #submitted = 0;
  #completed = 0;
  #failed = 0;
  #nowaitFallbacks = 0;
  #guardRouted = 0;
  #alignmentRejections = 0;
  readonly #batchSize = new LogHistogram();
  readonly #submitTimeUs = new LogHistogram();
  readonly #queueWaitUs = new LogHistogram();
  readonly #serviceTimeUs = new LogHistogram();

  /** `count` requests accepted (they are in flight until completed/failed). */
  submitted(count = 1): void {
    this.#submitted += count;
  }

  /** One submission to the kernel or the workers carrying `size` requests, taking `submitTimeUs` inside the call. */
  batch(size: number, submitTimeUs?: number): void {
    this.#batchSize.record(size);
    if (submitTimeUs !== undefined) this.#submitTimeUs.record(submitTimeUs);
  }

  queueWait(us: number): void {
    this.#queueWaitUs.record(us);
  }

  serviceTime(us: number): void {
    this.#serviceTimeUs.record(us);
  }

  /** A request settled: `ok` false for errors and aborts. */
  settled(ok: boolean): void {
    if (ok) this.#completed += 1;
    else this.#failed += 1;
  }

  nowaitFallback(): void {
    this.#nowaitFallbacks += 1;
  }

  guardRouted(): void {
    this.#guardRouted += 1;
  }

  alignmentRejection(): void {
    this.#alignmentRejections += 1;
  }

  get inFlight(): number {
    return this.#submitted - this.#completed - this.#failed;
  }

  snapshot(): AioStats {
    return {
      submitted: this.#submitted,
      completed: this.#completed,
      failed: this.#failed,
      inFlight: this.inFlight,
      batchSize: this.#batchSize.summary(),
      submitTimeUs: this.#submitTimeUs.summary(),
      queueWaitUs: this.#queueWaitUs.summary(),
      serviceTimeUs: this.#serviceTimeUs.summary(),
      nowaitFallbacks: this.#nowaitFallbacks,
      guardRouted: this.#guardRouted,
      alignmentRejections: this.#alignmentRejections,
    };
  }
}
