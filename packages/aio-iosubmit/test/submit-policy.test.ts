import { describe, expect, it } from 'vitest';
import { DEFAULT_COLD_READ_POLICY } from '@vmlink/aio';
import {
  DEFAULT_COMPLETION_BUDGET_US,
  DEFAULT_DIRECT_BATCH,
  DEFAULT_DIRECT_SUBMIT_THRESHOLD,
  DEFAULT_SLOW_SUBMIT_US_PER_IOCB,
  DEFAULT_SUBMIT_THRESHOLD,
  DEFAULT_WRITE_NOWAIT_PROBE_WRITES,
  validateOptions,
} from '../src/options.js';
import { continuesRun, slowSubmitFlags, whenToSubmit, type RunEnd, type SubmitPolicy } from '@vmlink/aio';

const policy: SubmitPolicy = { submitThreshold: 8, directSubmitThreshold: 4, directBatch: 16 };

// Pure logic (no I/O, no clock): when queued requests go to io_submit.
describe('whenToSubmit (pure logic)', () => {
  it('submits at the end of the tick below the thresholds', () => {
    expect(whenToSubmit(1, 0, 0, policy)).toBe('tick');
    expect(whenToSubmit(3, 3, 15, policy)).toBe('tick');
    expect(whenToSubmit(7, 2, 40, policy)).toBe('tick');
  });

  it('submits at once at submitThreshold requests, or directSubmitThreshold O_DIRECT ones while the device is not busy', () => {
    expect(whenToSubmit(8, 0, 0, policy)).toBe('now');
    expect(whenToSubmit(4, 4, 0, policy)).toBe('now');
    expect(whenToSubmit(5, 4, 15, policy)).toBe('now');
  });

  it('holds O_DIRECT requests for a completion while directBatch are in the kernel, until directBatch are queued', () => {
    expect(whenToSubmit(1, 1, 16, policy)).toBe('completion');
    expect(whenToSubmit(15, 15, 30, policy)).toBe('completion');
    expect(whenToSubmit(16, 16, 30, policy)).toBe('now');
  });

  it('never holds a queue with buffered requests in it, nor with directBatch 0', () => {
    expect(whenToSubmit(3, 2, 30, policy)).toBe('tick');
    expect(whenToSubmit(9, 8, 30, policy)).toBe('now');
    expect(whenToSubmit(2, 2, 100, { ...policy, directBatch: 0 })).toBe('tick');
    expect(whenToSubmit(4, 4, 100, { ...policy, directBatch: 0 })).toBe('now');
  });

  it('has nothing to submit for an empty queue', () => {
    expect(whenToSubmit(0, 0, 64, policy)).toBe('tick');
  });

  it('counts a run of contiguous O_DIRECT requests once against every threshold', () => {
    // 16 requests in one run: below directSubmitThreshold (4 runs) and submitThreshold (8).
    expect(whenToSubmit(16, 16, 0, policy, 1)).toBe('tick');
    expect(whenToSubmit(16, 16, 0, policy, 4)).toBe('now');
    // Buffered requests count each; the runs add to them.
    expect(whenToSubmit(10, 4, 0, policy, 1)).toBe('tick'); // 6 + 1 units
    expect(whenToSubmit(11, 4, 0, policy, 2)).toBe('now'); // 7 + 2 units >= 8
    // A busy device holds a run until directBatch runs are queued (a completion flushes it).
    expect(whenToSubmit(32, 32, 16, policy, 1)).toBe('completion');
    expect(whenToSubmit(32, 32, 16, policy, 16)).toBe('now');
    // Runs default to the O_DIRECT requests (each its own run), as before.
    expect(whenToSubmit(4, 4, 0, policy)).toBe(whenToSubmit(4, 4, 0, policy, 4));
  });
});

// Pure logic: which O_DIRECT request continues the run of the one staged before it.
describe('continuesRun (pure logic)', () => {
  const READ = 0;
  const WRITE = 1;

  it('continues where the last one ended, on the same fd and op', () => {
    let last: RunEnd | undefined;
    const step = (fd: number, op: number, position: number | bigint, bytes: number): boolean => {
      const { continues, end } = continuesRun(last, fd, op, position, bytes);
      last = end;
      return continues;
    };
    expect(step(5, READ, 0, 4096)).toBe(false); // nothing before it
    expect(step(5, READ, 4096, 8192)).toBe(true);
    expect(step(5, READ, 12288, 4096)).toBe(true);
    expect(step(5, READ, 20480, 4096)).toBe(false); // a gap
    expect(step(6, READ, 24576, 4096)).toBe(false); // another fd
    expect(step(6, WRITE, 28672, 4096)).toBe(false); // another op
    expect(step(6, WRITE, 32768, 4096)).toBe(true);
    expect(step(6, WRITE, 32768, 4096)).toBe(false); // the same range again: no merge
    expect(step(6, WRITE, 36864n, 4096)).toBe(false); // bigint positions start anew
    expect(last).toBeUndefined();
    expect(step(6, WRITE, 40960, 4096)).toBe(false);
  });
});

// Pure logic over fabricated submit records [passed, accepted, us]: which requests rode a slow call.
describe('slowSubmitFlags (pure logic)', () => {
  it('flags every request of a call that took more than usPerIocb per accepted request', () => {
    const records = [4, 4, 12, 2, 2, 90, 3, 3, 60];
    expect(slowSubmitFlags(records, 3, 3, 20)).toEqual([false, false, false, false, true, true, false, false, false]);
    // The threshold is the caller's: at 10 us per request the last call (20 us each) is slow too.
    expect(slowSubmitFlags(records, 3, 3, 10)).toEqual([false, false, false, false, true, true, true, true, true]);
  });

  it('skips calls that accepted nothing and covers only the records given', () => {
    expect(slowSubmitFlags([2, 0, 500, 2, 2, 10], 2, 3, 20)).toEqual([false, false]);
    expect(slowSubmitFlags([2, 2, 500, 2, 2, 10], 1, 3, 20)).toEqual([true, true]);
  });
});

describe('options: defaults and checks', () => {
  it('fills in the documented defaults', () => {
    const resolved = validateOptions({}, 1 << 20);
    expect(resolved).toMatchObject({
      strict: false,
      maxInFlight: 128,
      submitThreshold: DEFAULT_SUBMIT_THRESHOLD,
      directSubmitThreshold: DEFAULT_DIRECT_SUBMIT_THRESHOLD,
      directBatch: DEFAULT_DIRECT_BATCH,
      bufferedReads: 'adaptive',
      slowSubmitUsPerIocb: DEFAULT_SLOW_SUBMIT_US_PER_IOCB,
      completionBudgetUs: DEFAULT_COMPLETION_BUDGET_US,
      writeNowaitProbeWrites: DEFAULT_WRITE_NOWAIT_PROBE_WRITES,
    });
    expect([DEFAULT_SUBMIT_THRESHOLD, DEFAULT_DIRECT_SUBMIT_THRESHOLD, DEFAULT_DIRECT_BATCH]).toEqual([8, 4, 8]);
    expect([DEFAULT_SLOW_SUBMIT_US_PER_IOCB, DEFAULT_COMPLETION_BUDGET_US, DEFAULT_WRITE_NOWAIT_PROBE_WRITES]).toEqual([20, 500, 4]);
    expect(resolved.coldReads).toEqual({ window: 32, missesToCool: 4, missesToWarm: 2, firstPause: 256, maxPause: 4096 });
    expect(resolved.coldReads).toEqual(DEFAULT_COLD_READ_POLICY);
  });

  it('overlays a partial cold-read policy on the defaults', () => {
    expect(validateOptions({ coldReads: { window: 8, missesToCool: 2 } }, 128).coldReads).toEqual({ ...DEFAULT_COLD_READ_POLICY, window: 8, missesToCool: 2 });
  });

  it.each([
    [{ directBatch: -1 }, 'options.directBatch'],
    [{ slowSubmitUsPerIocb: 0 }, 'options.slowSubmitUsPerIocb'],
    [{ completionBudgetUs: 2.5 }, 'options.completionBudgetUs'],
    [{ writeNowaitProbeWrites: 0 }, 'options.writeNowaitProbeWrites'],
    [{ coldReads: { window: 0 } }, 'options.coldReads.window'],
    [{ coldReads: { missesToCool: 40 } }, 'options.coldReads.missesToCool'],
    [{ coldReads: { firstPause: 512, maxPause: 256 } }, 'options.coldReads.maxPause'],
    [{ coldReads: { windw: 3 } }, 'options.coldReads'],
  ])('rejects %j with ERR_OUT_OF_RANGE naming %s', (options, name) => {
    expect(() => validateOptions(options, 128)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining(name) }));
  });

  it('rejects a cold-read policy that is not an object, and a non-number', () => {
    expect(() => validateOptions({ coldReads: 5 }, 128)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.coldReads') }));
    expect(() => validateOptions({ completionBudgetUs: '500' }, 128)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.completionBudgetUs') }));
  });
});
