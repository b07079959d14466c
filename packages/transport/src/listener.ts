import { EventEmitter } from 'node:events';
import type { Connection, Listener, ListenerEventMap, Transport } from './types.js';
import { AsyncQueue } from './queue.js';

/** Connections an iterating consumer may leave unclaimed before new ones are refused. */
const ITERATOR_QUEUE_LIMIT = 128;

/**
 * The shared half of every Listener: `'connection'` events, async iteration, idempotent
 * `close()`, `Symbol.asyncDispose`, close-on-abort. A plugin extends it, implements
 * `address()`, `ref()`, `unref()` and `closeHandle()`, and calls `accept()` for each
 * new Connection.
 */
export abstract class ListenerBase extends EventEmitter<ListenerEventMap> implements Listener {
  private closing: Promise<void> | undefined;
  private readonly iterators = new Set<AsyncQueue<Connection>>();

  protected constructor(readonly transport: Transport, signal?: AbortSignal) {
    super();
    if (signal) {
      const onAbort = (): void => void this.close().catch((error: Error) => this.emit('error', error));
      signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }

  abstract address(): string;
  abstract ref(): this;
  abstract unref(): this;
  /** Release the channel (close the socket, the device...). Called once. */
  protected abstract closeHandle(): Promise<void>;

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * Deliver a new Connection to `'connection'` listeners and iterators. One nobody can
   * take (no listener, no iterator, or every iterator's queue full) is destroyed rather
   * than leaked.
   */
  protected accept(connection: Connection): void {
    if (this.closed) {
      connection.destroy();
      return;
    }
    let taken = this.emit('connection', connection);
    for (const queue of this.iterators) taken = queue.push(connection) || taken;
    if (!taken) connection.destroy();
  }

  /** Report an accept-side failure that does not end the listener. */
  protected reportError(error: Error): void {
    if (this.listenerCount('error') === 0 && this.iterators.size > 0) {
      for (const queue of this.iterators) queue.fail(error);
    } else {
      this.emit('error', error); // like net.Server: unhandled, it throws
    }
  }

  close(): Promise<void> {
    this.closing ??= this.closeHandle().finally(() => {
      for (const queue of this.iterators) queue.end();
      this.emit('close');
    });
    return this.closing;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Connection> {
    const queue: AsyncQueue<Connection> = new AsyncQueue(ITERATOR_QUEUE_LIMIT, () => {
      this.iterators.delete(queue);
      for (const connection of queue.drain()) connection.destroy();
    });
    if (this.closed) queue.end();
    else this.iterators.add(queue);
    return queue;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
