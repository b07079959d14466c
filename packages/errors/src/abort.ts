import { VmlinkError } from './errors.js';

/** The error Node's APIs reject with on abort: name `AbortError`, code `ABORT_ERR`. */
export function abortError(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason;
  const err = new VmlinkError('ABORT_ERR', 'The operation was aborted', reason === undefined ? undefined : { cause: reason });
  err.name = 'AbortError';
  return err;
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}
