import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, backoffDelay, validateBackoff } from '@vmlink/transport';

describe('backoffDelay (pure logic)', () => {
  const noJitter = { ...DEFAULT_BACKOFF, jitter: 0 };

  it('grows by factor from initialDelay and stops at maxDelay', () => {
    const delays = Array.from({ length: 10 }, (_, attempt) => backoffDelay(attempt, noJitter));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
  });

  it('jitter draws from [d * (1 - jitter), d]', () => {
    const backoff = { initialDelay: 1000, maxDelay: 1000, factor: 2, jitter: 0.5 };
    expect(backoffDelay(0, backoff, () => 0)).toBe(1000);
    expect(backoffDelay(0, backoff, () => 0.999999)).toBe(500);
    expect(backoffDelay(0, backoff, () => 0.5)).toBe(750);
  });

  it('never overflows for huge attempt counts', () => {
    expect(backoffDelay(10_000, noJitter)).toBe(10_000);
  });
});

describe('validateBackoff', () => {
  it('fills defaults', () => {
    expect(validateBackoff(undefined)).toEqual(DEFAULT_BACKOFF);
    expect(validateBackoff({ maxDelay: 500 })).toEqual({ ...DEFAULT_BACKOFF, maxDelay: 500 });
  });

  it.each([
    [{ initialDelay: -1 }, 'ERR_OUT_OF_RANGE'],
    [{ initialDelay: 200, maxDelay: 100 }, 'ERR_OUT_OF_RANGE'],
    [{ factor: 0.5 }, 'ERR_OUT_OF_RANGE'],
    [{ jitter: 2 }, 'ERR_OUT_OF_RANGE'],
    [{ jitter: Number.NaN }, 'ERR_OUT_OF_RANGE'],
    [{ factor: '2' }, 'ERR_INVALID_ARG_TYPE'],
    ['fast', 'ERR_INVALID_ARG_TYPE'],
  ])('rejects %j with %s', (value, code) => {
    expect(() => validateBackoff(value)).toThrow(expect.objectContaining({ code }));
  });
});
