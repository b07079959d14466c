import { abortError, outOfRange, invalidArgType, validateAbortSignal, validateObject } from '@vmlink/errors';
import { dialTimeoutError } from './errors.js';
import type { Connection, DialOptions } from './types.js';

/** Longest timeout a Node timer can hold. */
const MAX_TIMEOUT_MS = 0x7fff_ffff;

/** Validate `DialOptions`; returns a plain copy. */
export function validateDialOptions(options: unknown): DialOptions {
  if (options === undefined) return {};
  validateObject(options, 'options');
  const { signal, timeout } = options;
  validateAbortSignal(signal, 'options.signal');
  if (timeout !== undefined) {
    if (typeof timeout !== 'number') throw invalidArgType('options.timeout', 'of type number', timeout);
    if (!Number.isInteger(timeout) || timeout <= 0 || timeout > MAX_TIMEOUT_MS) {
      throw outOfRange('options.timeout', `an integer > 0 and <= ${MAX_TIMEOUT_MS}`, timeout);
    }
  }
  return { signal, timeout };
}

/**
 * Run a plugin's dial under the caller's `signal` and `timeout`.
 *
 * `start` gets one signal that fires on either; it should stop its work when it fires,
 * but it does not have to get the error right: this helper rejects with an AbortError
 * (caller abort) or ETIMEDOUT (deadline) at once, and destroys a Connection that
 * `start` still produces afterwards, so nothing leaks.
 */
export function dialWithDeadline<C extends Connection>(
  address: string,
  options: DialOptions | undefined,
  start: (signal: AbortSignal) => Promise<C>,
): Promise<C> {
  let signal: AbortSignal | undefined;
  let timeout: number | undefined;
  try {
    ({ signal, timeout } = validateDialOptions(options));
  } catch (error) {
    return Promise.reject(error); // dial() is async: bad options reject, they never throw
  }
  if (signal?.aborted) return Promise.reject(abortError(signal));

  const inner = new AbortController();
  return new Promise<C>((resolve, reject) => {
    let settled = false;
    const finish = (): void => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: Error): void => {
      if (settled) return;
      finish();
      inner.abort(error);
      reject(error);
    };
    const onAbort = (): void => fail(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = timeout === undefined ? undefined : setTimeout(() => fail(dialTimeoutError(address, timeout)), timeout);

    let started: Promise<C>;
    try {
      started = start(inner.signal);
    } catch (error) {
      fail(error as Error);
      return;
    }
    started.then(
      (connection) => {
        if (settled) {
          connection.destroy();
          return;
        }
        finish();
        resolve(connection);
      },
      (error: unknown) => fail(error as Error),
    );
  });
}
