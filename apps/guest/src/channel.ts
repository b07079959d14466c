/**
 * A push-to-pull bridge with room for one chunk: the producer's `send()` resolves only
 * once the consumer has taken the chunk, so a slow or stalled reader stalls the producer
 * (a file read, a child's pipe) instead of filling memory.
 */
export class Channel implements AsyncIterable<Uint8Array> {
  private slot: Uint8Array | undefined;
  private ended = false;
  private failure: Error | undefined;
  private consumerGone: Error | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  private markDone!: () => void;
  /** Settles once the consumer has finished (read to the end, failed, or stopped). */
  readonly done = new Promise<void>((resolve) => (this.markDone = resolve));

  /**
   * `onConsumerGone` is told when the consumer stops before the end (a cancel): a producer
   * waiting on something else than send() (a quiet child process) learns it there.
   */
  constructor(
    private readonly goneError: () => Error,
    private readonly onConsumerGone?: (reason: Error) => void,
  ) {}

  /** Hands one chunk over; rejects once the consumer has stopped reading. */
  async send(chunk: Uint8Array): Promise<void> {
    if (this.consumerGone) throw this.consumerGone;
    while (this.slot !== undefined) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
      if (this.consumerGone) throw this.consumerGone;
    }
    this.slot = chunk;
    this.poke('consumer');
    while (this.slot === chunk && !this.consumerGone) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
    if (this.slot === chunk && this.consumerGone) throw this.consumerGone;
  }

  /** The reader will never come (connection gone, shutdown): fail the producer, settle `done`. */
  abort(reason: Error): void {
    this.consumerGone ??= reason;
    this.poke('producer');
    this.markDone();
  }

  end(): void {
    this.ended = true;
    this.poke('consumer');
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.poke('consumer');
  }

  private poke(who: 'consumer' | 'producer'): void {
    const wake = who === 'consumer' ? this.wakeConsumer : this.wakeProducer;
    if (who === 'consumer') this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    wake?.();
  }

  /**
   * A hand-written iterator rather than a generator: a generator's return() waits until
   * its pending next() settles, so a consumer that stops while the producer is quiet (a
   * command printing nothing) would not reach the producer until its next chunk. Here
   * return() stops the producer at once.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const finish = (): void => {
      if (!this.ended && !this.failure && !this.consumerGone) {
        this.consumerGone = this.goneError();
        this.poke('producer');
        this.onConsumerGone?.(this.consumerGone);
      }
      this.markDone();
    };
    const next = async (): Promise<IteratorResult<Uint8Array>> => {
      for (;;) {
        if (this.consumerGone) return { done: true, value: undefined };
        if (this.slot !== undefined) {
          const chunk = this.slot;
          this.slot = undefined;
          this.poke('producer');
          return { done: false, value: chunk };
        }
        if (this.failure) {
          finish();
          throw this.failure;
        }
        if (this.ended) {
          finish();
          return { done: true, value: undefined };
        }
        await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
      }
    };
    return {
      next,
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        finish();
        // A next() still waiting for a chunk ends now too.
        this.poke('consumer');
        return { done: true, value: undefined };
      },
    };
  }
}
