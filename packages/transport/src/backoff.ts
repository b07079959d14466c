import { invalidArgType, outOfRange, validateObject } from '@vmlink/errors';

export interface BackoffOptions {
  /** Delay before the first retry, in ms (default 100). */
  readonly initialDelay?: number;
  /** Upper bound for any delay, in ms (default 10 000). */
  readonly maxDelay?: number;
  /** Growth per failed attempt (default 2). */
  readonly factor?: number;
  /**
   * Fraction of each delay that is random, 0..1 (default 0.5): the delay is drawn from
   * [d * (1 - jitter), d], so clients that lost the same host do not redial in step.
   */
  readonly jitter?: number;
}

export type Backoff = Required<BackoffOptions>;

export const DEFAULT_BACKOFF: Backoff = Object.freeze({ initialDelay: 100, maxDelay: 10_000, factor: 2, jitter: 0.5 });

function numberIn(options: Record<string, unknown>, key: keyof Backoff, min: number, max: number): number {
  const value = options[key] ?? DEFAULT_BACKOFF[key];
  const name = `options.backoff.${key}`;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!(value >= min && value <= max)) throw outOfRange(name, `>= ${min} and <= ${max}`, value);
  return value;
}

export function validateBackoff(options: unknown): Backoff {
  if (options === undefined) return DEFAULT_BACKOFF;
  validateObject(options, 'options.backoff');
  const initialDelay = numberIn(options, 'initialDelay', 0, 0x7fff_ffff);
  const maxDelay = numberIn(options, 'maxDelay', initialDelay, 0x7fff_ffff);
  const factor = numberIn(options, 'factor', 1, 1000);
  const jitter = numberIn(options, 'jitter', 0, 1);
  return { initialDelay, maxDelay, factor, jitter };
}

/** Delay before retry number `attempt` (0 = first retry); `random()` returns [0, 1). */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const exponential = backoff.initialDelay * backoff.factor ** attempt;
  const capped = Math.min(backoff.maxDelay, exponential);
  return Math.round(capped * (1 - backoff.jitter * random()));
}
