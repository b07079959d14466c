import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type { BatchLayout } from '../index.cjs';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();

const engines: [string, BatchLayout][] = [
  ['ThreadPool', binding.ThreadPool.layout],
  ['IoSubmitContext', binding.IoSubmitContext.layout],
];

/** Every index is an integer in 0..stride-1 and no two fields share one. */
function expectDistinctIndices(fields: Readonly<Record<string, number>>, stride: number): void {
  const indices = Object.values(fields);
  expect(indices.length).toBeGreaterThan(0);
  for (const index of indices) {
    expect(Number.isInteger(index)).toBe(true);
    expect(index).toBeGreaterThanOrEqual(0);
    expect(index).toBeLessThan(stride);
  }
  expect(new Set(indices).size).toBe(indices.length);
}

describe.each(engines)('%s.layout', (_name, layout) => {
  it('names every request field once, each at a distinct index below requestStride', () => {
    expect(Object.keys(layout.request).sort()).toEqual(
      ['alignLength', 'alignMemory', 'alignOffset', 'fd', 'lengthHigh', 'lengthLow', 'mode', 'op', 'positionHigh', 'positionLow', 'rwFlags', 'slot'],
    );
    expectDistinctIndices(layout.request, layout.requestStride);
  });

  it('names every completion field once, each at a distinct index below completionStride', () => {
    expect(Object.keys(layout.completion).sort()).toEqual(['flags', 'partial', 'queueWaitUs', 'result', 'serviceUs', 'slot']);
    expectDistinctIndices(layout.completion, layout.completionStride);
  });

  it('records are [passed, accepted, microseconds]; statuses cannot be mistaken for errnos; flags are distinct bits', () => {
    expect(layout.recordStride).toBe(3);
    expect(layout.status.submitted).toBe(0);
    // Positive statuses are errnos: the two engine verdicts must be negative and distinct.
    expect(layout.status.deferred).toBeLessThan(0);
    expect(layout.status.misaligned).toBeLessThan(0);
    expect(layout.status.deferred).not.toBe(layout.status.misaligned);
    const flags = Object.values(layout.flags);
    for (const flag of flags) expect(flag > 0 && (flag & (flag - 1)) === 0).toBe(true);
    expect(flags.reduce((all, flag) => all | flag, 0)).toBe(flags.reduce((sum, flag) => sum + flag, 0));
  });

  it('op codes are distinct non-negative integers', () => {
    const codes = Object.values(layout.ops);
    for (const code of codes) expect(Number.isInteger(code) && code >= 0).toBe(true);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe('the two engines share one contract', () => {
  it('request, completion, status, record and flag numbers are the same in both layouts', () => {
    const [pool, kernel] = [binding.ThreadPool.layout, binding.IoSubmitContext.layout];
    const { ops: poolOps, ...poolShared } = pool;
    const { ops: kernelOps, maxIocbsPerCall, maxInFlightLimit, rwfNowait, ...kernelShared } = binding.IoSubmitContext.layout;
    expect(kernelShared).toEqual(poolShared);
    expect(Object.keys(poolOps).sort()).toEqual(['discard', 'fallocate', 'fdatasync', 'fsync', 'read', 'readCacheFirst', 'readCachedHere', 'truncate', 'write']);
    expect(Object.keys(kernelOps).sort()).toEqual(['fdatasync', 'fsync', 'read', 'write']);
    expect(maxIocbsPerCall).toBe(32);
    expect(maxInFlightLimit).toBeGreaterThanOrEqual(maxIocbsPerCall);
    expect(rwfNowait).toBe(8); // RWF_NOWAIT in linux/fs.h
    expect(kernel).toBe(binding.ioSubmitLayout);
  });
});
