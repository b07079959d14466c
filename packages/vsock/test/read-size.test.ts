// streamReadSize: pure logic (no sockets), the rule for how much one 'data' chunk carries.
import { describe, expect, it } from 'vitest';

import { MAX_STREAM_READ_SIZE, MIN_STREAM_READ_SIZE, streamReadSize } from '../src/read-size.js';

describe('streamReadSize (pure logic)', () => {
  it("is the socket's receive buffer: one chunk can take all the kernel holds", () => {
    expect(streamReadSize(256 * 1024)).toBe(256 * 1024);
    expect(streamReadSize(300_000)).toBe(300_000);
  });

  it('stays within [64 KiB, 1 MiB], and cuts fractions', () => {
    expect(streamReadSize(4096)).toBe(MIN_STREAM_READ_SIZE);
    expect(streamReadSize(0)).toBe(MIN_STREAM_READ_SIZE);
    expect(streamReadSize(64 * 1024 * 1024)).toBe(MAX_STREAM_READ_SIZE);
    expect(streamReadSize(100_000.7)).toBe(100_000);
  });

  it('falls back to the minimum when the size is unknown or not a number', () => {
    expect(streamReadSize(undefined)).toBe(MIN_STREAM_READ_SIZE);
    expect(streamReadSize(Number.NaN)).toBe(MIN_STREAM_READ_SIZE);
    expect(streamReadSize(Number.POSITIVE_INFINITY)).toBe(MIN_STREAM_READ_SIZE);
  });
});
