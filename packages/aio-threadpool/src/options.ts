import { availableParallelism } from 'node:os';
import { validateInteger, validateObject } from '@vmlink/errors';

export interface ThreadPoolOptions {
  /** Worker threads: default the number of cores, at least 2; at most 256. */
  readonly threads?: number;
}

export const MAX_THREADS = 256;

/** The default size: one thread per core, but at least 2 so one slow request cannot stall the rest. */
export function defaultThreadCount(): number {
  return Math.min(MAX_THREADS, Math.max(2, availableParallelism()));
}

export function resolveThreadCount(options: unknown): number {
  if (options === undefined) return defaultThreadCount();
  validateObject(options, 'options');
  const threads = (options as ThreadPoolOptions).threads;
  if (threads === undefined) return defaultThreadCount();
  return validateInteger(threads, 'options.threads', 1, MAX_THREADS);
}
