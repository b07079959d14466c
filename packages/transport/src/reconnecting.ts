import { EventEmitter } from 'node:events';
import { abortError, validateAbortSignal, validateObject, invalidArgType } from '@vmlink/errors';
import { backoffDelay, validateBackoff, type Backoff, type BackoffOptions } from './backoff.js';
import { validateDialOptions } from './deadline.js';
import { AsyncQueue } from './queue.js';
import { resolveAddress } from './uri.js';
import type { Connection, Transport, TransportAddress } from './types.js';

export interface ReconnectingOptions {
  readonly backoff?: BackoffOptions;
  /** Aborting stops the client, like `close()`. */
  readonly signal?: AbortSignal;
  /** Per-dial `timeout` in ms (none by default: the transport's own applies). */
  readonly dialTimeout?: number;
  /**
   * Whether a failed dial is worth retrying. By default everything is, except invalid
   * arguments and addresses (`ERR_INVALID_*`, `ERR_VMLINK_INVALID_ADDRESS`,
   * `ERR_VMLINK_UNSUPPORTED_*`): those will never succeed.
   */
  readonly shouldRetry?: (error: Error) => boolean;
  /** Source of randomness for jitter, [0, 1) (default Math.random; seed it in tests). */
  readonly random?: () => number;
}

export interface RetryInfo {
  /** Failed attempts in a row so far (1 after the first failure). */
  readonly attempt: number;
  /** Milliseconds until the next dial. */
  readonly delay: number;
  readonly error: Error;
}

export interface ReconnectingEventMap {
  /** A new Connection is up. */
  up: [connection: Connection];
  /** The current Connection closed; `error` is why, if it failed. */
  down: [error: Error | undefined];
  /** A dial failed; another follows after `delay`. */
  retry: [info: RetryInfo];
  /** A dial failed in a way `shouldRetry` refuses: the client stops. Only emitted if listened to. */
  error: [error: Error];
  /** The client stopped (close(), signal, or a fatal error). */
  close: [];
}

interface ResolvedOptions {
  readonly backoff: Backoff;
  readonly signal: AbortSignal | undefined;
  readonly dialTimeout: number | undefined;
  readonly shouldRetry: (error: Error) => boolean;
  readonly random: () => number;
}

export type ReconnectingState = 'connecting' | 'up' | 'waiting' | 'closed';

function defaultShouldRetry(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return true;
  return !(code.startsWith('ERR_INVALID_') || code === 'ERR_VMLINK_INVALID_ADDRESS' || code.startsWith('ERR_VMLINK_UNSUPPORTED_'));
}

/**
 * A client that keeps one Connection to `address` alive: it dials, reports `'up'`, and
 * when the link drops reports `'down'` and dials again with exponential backoff and
 * jitter. Guests boot after hosts start dialing, and snapshots reset vsock connections;
 * this is the loop every caller would otherwise write.
 */
export class ReconnectingClient extends EventEmitter<ReconnectingEventMap> implements AsyncIterable<Connection>, AsyncDisposable {
  private readonly stop = new AbortController();
  private readonly iterators = new Set<AsyncQueue<Connection>>();
  private readonly waiters = new Set<{ resolve: (c: Connection) => void; reject: (e: Error) => void }>();
  private current: Connection | undefined;
  private currentState: ReconnectingState = 'connecting';
  private timer: NodeJS.Timeout | undefined;
  private refed = true;
  private fatal: Error | undefined;
  private readonly done: Promise<void>;

  /** @internal Use reconnecting(). */
  constructor(
    readonly transport: Transport,
    readonly address: TransportAddress,
    private readonly options: ResolvedOptions,
  ) {
    super();
    const { signal } = options;
    const onAbort = (): void => void this.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.done = this.run().finally(() => signal?.removeEventListener('abort', onAbort));
  }

  /** The Connection that is up now, if any. */
  get connection(): Connection | undefined {
    return this.current;
  }

  get state(): ReconnectingState {
    return this.currentState;
  }

  /** The current Connection, or the next one to come up. Rejects if the client stops first. */
  waitForConnection(options: { signal?: AbortSignal } = {}): Promise<Connection> {
    validateObject(options, 'options');
    validateAbortSignal(options.signal, 'options.signal');
    const { signal } = options;
    if (this.current) return Promise.resolve(this.current);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.currentState === 'closed') return Promise.reject(this.stoppedError());
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(waiter);
        reject(abortError(signal));
      };
      const waiter = {
        resolve: (c: Connection) => (signal?.removeEventListener('abort', onAbort), resolve(c)),
        reject: (e: Error) => (signal?.removeEventListener('abort', onAbort), reject(e)),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** Stop redialing and destroy the current Connection. Safe to call more than once. */
  close(): Promise<void> {
    this.stop.abort();
    this.current?.destroy();
    return this.done;
  }

  /** Keep the event loop alive while waiting or connected (the default). */
  ref(): this {
    this.refed = true;
    this.timer?.ref();
    this.current?.ref();
    return this;
  }

  /** Let the process exit while this client waits to redial or holds an idle Connection. */
  unref(): this {
    this.refed = false;
    this.timer?.unref();
    this.current?.unref();
    return this;
  }

  /** Each Connection as it comes up; ends when the client stops. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Connection> {
    const queue: AsyncQueue<Connection> = new AsyncQueue(1, () => this.iterators.delete(queue));
    if (this.current) queue.push(this.current);
    if (this.currentState === 'closed') queue.end();
    else this.iterators.add(queue);
    return queue;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private stoppedError(): Error {
    return this.fatal ?? abortError(this.stop.signal);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stop.signal.aborted) {
      this.currentState = 'connecting';
      let connection: Connection;
      try {
        connection = await this.transport.dial(this.address, { signal: this.stop.signal, timeout: this.options.dialTimeout });
      } catch (caught) {
        if (this.stop.signal.aborted) break;
        const error = caught instanceof Error ? caught : new Error(String(caught));
        if (!this.options.shouldRetry(error)) {
          this.fatal = error;
          if (this.listenerCount('error') > 0) this.emit('error', error);
          break;
        }
        const delay = backoffDelay(failures, this.options.backoff, this.options.random);
        failures += 1;
        this.emit('retry', { attempt: failures, delay, error });
        await this.sleep(delay);
        continue;
      }
      failures = 0;
      await this.hold(connection);
      if (this.stop.signal.aborted) break;
      // Even after a clean up/down, wait one initial delay: a peer that accepts and closes
      // at once must not turn this loop into a busy one.
      await this.sleep(backoffDelay(0, this.options.backoff, this.options.random));
    }
    this.currentState = 'closed';
    const error = this.stoppedError();
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters.clear();
    for (const queue of this.iterators) {
      if (this.fatal) queue.fail(this.fatal);
      else queue.end();
    }
    this.emit('close');
  }

  /** Publish `connection` as up and resolve once it has closed, with why. */
  private hold(connection: Connection): Promise<void> {
    return new Promise((resolve) => {
      let failure: Error | undefined;
      connection.on('error', (error: Error) => (failure ??= error));
      // The peer finished: finish our side too, so a half-open link cannot stay "up"
      // (the Connection must be read for 'end' to come, as with any stream).
      connection.once('end', () => {
        if (!connection.writableEnded) connection.end();
      });
      connection.once('close', () => {
        this.current = undefined;
        this.currentState = 'waiting';
        this.emit('down', failure);
        resolve();
      });
      if (!this.refed) connection.unref();
      this.current = connection;
      this.currentState = 'up';
      for (const waiter of this.waiters) waiter.resolve(connection);
      this.waiters.clear();
      for (const queue of this.iterators) queue.push(connection);
      this.emit('up', connection);
      if (this.stop.signal.aborted || connection.destroyed) connection.destroy();
    });
  }

  private sleep(ms: number): Promise<void> {
    if (this.stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.stop.signal.removeEventListener('abort', wake);
        resolve();
      };
      this.timer = setTimeout(wake, ms);
      if (!this.refed) this.timer.unref();
      this.stop.signal.addEventListener('abort', wake, { once: true });
    });
  }
}

/**
 * `reconnecting(transport, 'vsock://3:1024', { backoff: { maxDelay: 5000 } })`: see
 * ReconnectingClient. The address is parsed at once, so a malformed one throws here.
 */
export function reconnecting(
  transport: Transport,
  address: TransportAddress | string,
  options: ReconnectingOptions = {},
): ReconnectingClient {
  if (transport === null || typeof transport !== 'object' || typeof transport.dial !== 'function') {
    throw invalidArgType('transport', 'a Transport', transport);
  }
  const typed = options;
  validateObject(options, 'options');
  validateAbortSignal(options.signal, 'options.signal');
  const backoff = validateBackoff(options.backoff);
  validateDialOptions({ timeout: options.dialTimeout });
  if (options.shouldRetry !== undefined && typeof options.shouldRetry !== 'function') {
    throw invalidArgType('options.shouldRetry', 'of type function', options.shouldRetry);
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw invalidArgType('options.random', 'of type function', options.random);
  }
  const parsed = resolveAddress(address, (uri) => transport.parse(uri));
  return new ReconnectingClient(transport, parsed, {
    backoff,
    signal: options.signal,
    dialTimeout: typed.dialTimeout,
    shouldRetry: typed.shouldRetry ?? defaultShouldRetry,
    random: typed.random ?? Math.random,
  });
}
