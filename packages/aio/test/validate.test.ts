import { describe, expect, it } from 'vitest';
import { MAX_POSITION, normalizePosition, validateBuffers, validateOpenFlags, validateOpOptions, validatePosition } from '../src/index.js';

describe('validatePosition', () => {
  it.each([0, 1, Number.MAX_SAFE_INTEGER, 0n, 2n ** 62n, MAX_POSITION])('accepts %s', (position) => {
    expect(validatePosition(position)).toBe(position);
  });

  it.each([
    [-1, '-1'],
    [1.5, '1.5'],
    [Number.MAX_SAFE_INTEGER + 1, String(Number.MAX_SAFE_INTEGER + 1)],
    [Number.NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-1n, '-1n'],
    [MAX_POSITION + 1n, `${MAX_POSITION + 1n}n`],
  ])('rejects %s with ERR_OUT_OF_RANGE naming it', (position, shown) => {
    expect(() => validatePosition(position)).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError', message: expect.stringContaining(shown) }),
    );
  });

  it.each(['0', null, undefined, {}])('rejects %s with ERR_INVALID_ARG_TYPE', (position) => {
    expect(() => validatePosition(position)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('normalizes safe bigints to numbers and keeps the rest', () => {
    expect(normalizePosition(5n)).toBe(5);
    expect(normalizePosition(2n ** 60n)).toBe(2n ** 60n);
    expect(normalizePosition(7)).toBe(7);
  });
});

describe('validateBuffers / options / flags', () => {
  it('accepts Buffers and Uint8Arrays, names the bad element', () => {
    expect(validateBuffers([Buffer.alloc(1), new Uint8Array(2)])).toHaveLength(2);
    expect(() => validateBuffers([Buffer.alloc(1), new Uint16Array(1)])).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('buffers[1]') }),
    );
    expect(() => validateBuffers('x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => validateBuffers([])).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => validateBuffers(Array(1025).fill(Buffer.alloc(1)))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('1025') }));
  });

  it('checks the signal option', () => {
    const signal = new AbortController().signal;
    expect(validateOpOptions({ signal })).toBe(signal);
    expect(validateOpOptions(undefined)).toBeUndefined();
    expect(() => validateOpOptions({ signal: {} })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => validateOpOptions(3)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('checks open flags', () => {
    expect(validateOpenFlags('r+')).toBe('r+');
    expect(validateOpenFlags(2)).toBe(2);
    expect(() => validateOpenFlags(-1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => validateOpenFlags(true)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
