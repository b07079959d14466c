import { encodeExecInput, type PtySize } from '@vmlink/agent-protocol';

/**
 * What we type and the window-size changes, in order, as a PTY exec's input records
 * (ExecInputTag): an async iterable for the `exec.stdin` request body. Bounded: above
 * `highWaterMark` bytes queued, `push` returns false and the caller pauses its source
 * until `onDrain`. `end()` finishes the body.
 */
export class TerminalInput implements AsyncIterable<Uint8Array> {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly onDrain: () => void,
    private readonly highWaterMark = 64 * 1024,
  ) {}

  /** Typed bytes; false: stop reading until onDrain. */
  type(data: Uint8Array): boolean {
    return this.push(encodeExecInput({ data }));
  }

  resize(size: PtySize): void {
    this.push(encodeExecInput({ resize: size }));
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  private push(record: Buffer): boolean {
    if (this.ended) return true;
    this.queue.push(record);
    this.queued += record.length;
    this.wake?.();
    return this.queued < this.highWaterMark;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        const wasFull = this.queued >= this.highWaterMark;
        this.queued -= next.length;
        if (wasFull && this.queued < this.highWaterMark) this.onDrain();
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
