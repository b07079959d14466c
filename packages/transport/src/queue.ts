/**
 * A small async queue behind the `for await` forms of Listener and reconnecting():
 * values pushed while nobody waits are kept (at most `limit`; `push` returns false when
 * full so the producer can refuse), `end()`/`fail()` finish iteration.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiters: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: Error) => void }> = [];
  private done = false;
  private error: Error | undefined;

  constructor(
    private readonly limit: number,
    private readonly onReturn: () => void = () => {},
  ) {}

  /** Hand a value to a waiting consumer or keep it; false if the queue is full or ended. */
  push(value: T): boolean {
    if (this.done) return false;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value, done: false });
      return true;
    }
    if (this.items.length >= this.limit) return false;
    this.items.push(value);
    return true;
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    for (const waiter of this.waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
  }

  fail(error: Error): void {
    if (this.done) return;
    this.error = error;
    this.done = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** Values still queued when iteration stopped early, so the owner can dispose of them. */
  drain(): T[] {
    return this.items.splice(0);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.error) {
      const error = this.error;
      this.error = undefined;
      return Promise.reject(error);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
