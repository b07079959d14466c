// Pure logic (no threads, no files): the pool's decisions from the numbers it reports.
import { describe, expect, it } from 'vitest';
import type { ColdReadMeter } from '@vmlink/aio';
import { DEFAULT_CACHED_BASE_US, DEFAULT_CACHED_BYTES_PER_US, resolveOptions, servedFromCache, SlowShare, withinCopyTime, workersToAdd } from '../src/index.js';
import { CEILING_MAX_HOLD_WINDOWS, CEILING_STEP, CEILING_WINDOW, WorkerCeiling } from '../src/policy.js';
import { LoopReads } from '../src/loop-reads.js';

const timing = { cachedBaseUs: DEFAULT_CACHED_BASE_US, cachedBytesPerUs: DEFAULT_CACHED_BYTES_PER_US };

describe('withinCopyTime / servedFromCache', () => {
  it('a 4 KiB copy in 2 us is cached; a 70 us disk read is not; the budget grows with the size', () => {
    expect(withinCopyTime(2, 4096, timing)).toBe(true);
    expect(withinCopyTime(22, 4096, timing)).toBe(true); // 20 + 4096 / 2000 = 22.05
    expect(withinCopyTime(23, 4096, timing)).toBe(false);
    expect(withinCopyTime(70, 4096, timing)).toBe(false);
    expect(withinCopyTime(400, 1 << 20, timing)).toBe(true); // 20 + 524 us for 1 MiB
    expect(withinCopyTime(600, 1 << 20, timing)).toBe(false);
    expect(withinCopyTime(30, 4096, { cachedBaseUs: 40, cachedBytesPerUs: 2000 })).toBe(true);
  });

  it('needs the NOWAIT attempt to have served it; 0 at EOF is cached however long it took', () => {
    expect(servedFromCache(true, 4096, 3, timing)).toBe(true);
    expect(servedFromCache(false, 4096, 3, timing)).toBe(false);
    expect(servedFromCache(true, 4096, 500, timing)).toBe(false);
    expect(servedFromCache(true, 0, 5000, timing)).toBe(true);
  });
});

describe('SlowShare', () => {
  it('starts at 0, moves an eighth of the way per completion, and stays within 0..1', () => {
    const share = new SlowShare();
    expect(share.value).toBe(0);
    share.record(true);
    expect(share.value).toBeCloseTo(1 / 8);
    for (let i = 0; i < 100; i++) share.record(true);
    expect(share.value).toBeGreaterThan(0.99);
    expect(share.value).toBeLessThanOrEqual(1);
    for (let i = 0; i < 20; i++) share.record(false);
    expect(share.value).toBeLessThan(0.1);
  });

  it('three slow completions in a row cross the default threshold of 0.25, two do not', () => {
    const share = new SlowShare();
    share.record(true);
    share.record(true);
    expect(share.value).toBeLessThan(0.25);
    share.record(true);
    expect(share.value).toBeGreaterThan(0.25);
  });
});

describe('workersToAdd', () => {
  const load = { threads: 2, idleThreads: 0, queued: 30, inFlight: 32, maxThreads: 64, threadsPerInFlight: 1 };

  it('adds one worker per waiting request while requests block, up to maxThreads', () => {
    expect(workersToAdd(load, 1, 0.25)).toBe(30);
    expect(workersToAdd({ ...load, idleThreads: 10 }, 1, 0.25)).toBe(20);
    expect(workersToAdd({ ...load, threads: 60, inFlight: 100 }, 1, 0.25)).toBe(4);
    expect(workersToAdd({ ...load, threads: 64, inFlight: 100 }, 1, 0.25)).toBe(0);
    expect(workersToAdd({ ...load, threads: 70, inFlight: 100 }, 1, 0.25)).toBe(0);
  });

  it('never beyond one worker per request in flight (workers still starting look busy)', () => {
    expect(workersToAdd({ ...load, threads: 30, queued: 20 }, 1, 0.25)).toBe(2);
    expect(workersToAdd({ ...load, threads: 32, queued: 20 }, 1, 0.25)).toBe(0);
  });

  it('never beyond threadsPerInFlight x the requests in flight, rounded up (workers that find the next request queued never sleep)', () => {
    const share = { ...load, threadsPerInFlight: 0.25 };
    expect(workersToAdd(share, 1, 0.25)).toBe(6); // 8 for 32 in flight, 2 alive
    expect(workersToAdd({ ...share, threads: 8 }, 1, 0.25)).toBe(0);
    expect(workersToAdd({ ...share, threads: 1, inFlight: 2, queued: 1 }, 1, 0.25)).toBe(0); // ceil(0.5) = 1
    expect(workersToAdd({ ...share, threads: 1, inFlight: 5, queued: 4 }, 1, 0.25)).toBe(1); // ceil(1.25) = 2
  });

  it('adds none when nothing waits (idle workers take the queue)', () => {
    expect(workersToAdd({ ...load, queued: 0 }, 1, 0.25)).toBe(0);
    expect(workersToAdd({ ...load, queued: 5, idleThreads: 5 }, 1, 0.25)).toBe(0);
  });

  it('adds none for fast (page-cache) requests, except a first worker for a pool that has none', () => {
    expect(workersToAdd(load, 0.1, 0.25)).toBe(0);
    expect(workersToAdd({ ...load, threads: 0 }, 0, 0.25)).toBe(1);
    expect(workersToAdd({ ...load, threads: 0, queued: 0 }, 0, 0.25)).toBe(0);
    // A threshold of 0 grows on any wait, like QEMU's pool.
    expect(workersToAdd(load, 0, 0)).toBe(30);
  });
});

describe('WorkerCeiling (pure logic)', () => {
  const policy = { start: 0.375, max: 1, riseBelowSleptShare: 0.1, riseBelowLoopBusy: 0.75, fallAboveSleptShare: 0.3, keepRiseWhenFasterBy: 0.02 };
  const idleLoop = () => 0.3;

  /** A fake clock (ms) the windows advance: a window of CEILING_WINDOW requests taking `ms`. */
  function clocked(ceiling: WorkerCeiling) {
    let now = 0;
    /** Feeds one window: `slept` of its requests woke a worker; returns what the last record returned. */
    return (slept: number, threads: number, ms = 10, loopBusy = idleLoop, inFlight = 32): number | undefined => {
      let last: number | undefined;
      for (let i = 0; i < CEILING_WINDOW; i++) {
        now += ms / CEILING_WINDOW;
        last = ceiling.record(i < slept, inFlight, threads, loopBusy, now);
      }
      return last;
    };
  }

  it('tries a rise while requests rarely woke a worker and the pool is at its ceiling, keeps it while faster, up to max', () => {
    const ceiling = new WorkerCeiling(policy);
    const window = clocked(ceiling);
    expect(ceiling.value).toBe(0.375);
    expect(window(0, 12, 10)).toBeUndefined();
    expect(ceiling.value).toBeCloseTo(0.375 + CEILING_STEP);
    // The window at the new count is 5% faster: kept, and the next rise is tried.
    let ms = 10 / 1.05;
    window(Math.floor(CEILING_WINDOW * 0.09), 14, ms);
    expect(ceiling.value).toBeCloseTo(0.375 + 2 * CEILING_STEP);
    for (let threads = 16; threads <= 40; threads += 2) window(0, threads, (ms /= 1.05));
    expect(ceiling.value).toBe(1);
  });

  it('undoes a rise that did not make requests faster, returning the workers to keep, and waits longer before each next try', () => {
    const ceiling = new WorkerCeiling(policy);
    const window = clocked(ceiling);
    window(0, 12, 10);
    expect(ceiling.value).toBeCloseTo(0.4375);
    expect(window(0, 14, 10 / 1.01)).toBe(12); // 1% faster: not enough
    expect(ceiling.value).toBe(0.375);
    // Held for 1 window, then tried again; refused again, held for 2; then 4.
    const triesAfter: number[] = [];
    let windows = 0;
    for (let refusals = 0; refusals < 3; ) {
      window(0, 12, 10);
      windows++;
      if (ceiling.value > 0.375) {
        triesAfter.push(windows);
        windows = 0;
        window(0, 14, 10.5); // slower
        refusals++;
      }
    }
    expect(triesAfter).toEqual([2, 3, 5]);
    expect(CEILING_MAX_HOLD_WINDOWS).toBe(64);
  });

  it('keepRiseWhenFasterBy -1 keeps every rise, slower or not (judged by sleeps alone)', () => {
    const ceiling = new WorkerCeiling({ ...policy, keepRiseWhenFasterBy: -1 });
    const window = clocked(ceiling);
    window(0, 12, 10);
    expect(window(0, 14, 20)).toBeUndefined(); // half as fast: kept, and the next rise tried
    expect(ceiling.value).toBeCloseTo(0.375 + 2 * CEILING_STEP);
  });

  it('does not rise while the pool has not reached it (workers still to join), or the loop is busy', () => {
    const ceiling = new WorkerCeiling(policy);
    const window = clocked(ceiling);
    window(0, 11); // ceil(32 x 0.375) = 12 not reached
    expect(ceiling.value).toBe(0.375);
    window(0, 12, 10, () => 0.8);
    expect(ceiling.value).toBe(0.375);
    window(Math.ceil(CEILING_WINDOW * 0.1), 12); // exactly 10%: not below
    expect(ceiling.value).toBe(0.375);
  });

  it('falls a step when many requests woke a worker, returning the workers to keep; never below start', () => {
    const ceiling = new WorkerCeiling(policy);
    const window = clocked(ceiling);
    window(0, 12, 10);
    window(0, 14, 9);
    expect(ceiling.value).toBeCloseTo(0.5);
    expect(window(Math.floor(CEILING_WINDOW * 0.5), 16, 8)).toBe(Math.ceil(32 * (0.5 - CEILING_STEP)));
    expect(ceiling.value).toBeCloseTo(0.5 - CEILING_STEP);
    window(CEILING_WINDOW, 14);
    expect(ceiling.value).toBe(0.375);
    expect(window(CEILING_WINDOW, 12)).toBeUndefined(); // at start: nothing to trim
    expect(ceiling.value).toBe(0.375);
    // Between the bounds it holds.
    window(Math.floor(CEILING_WINDOW * 0.2), 12);
    expect(ceiling.value).toBe(0.375);
  });

  it('judges a window only at one worker count: a change of count starts the window (and its clock) again', () => {
    const ceiling = new WorkerCeiling(policy);
    for (let i = 0; i < CEILING_WINDOW - 1; i++) ceiling.record(false, 32, 12, idleLoop, i);
    let judged = 0;
    ceiling.record(false, 32, 13, () => ++judged, 5000); // joined: starts again, not judged
    expect(judged).toBe(0);
    for (let i = 0; i < CEILING_WINDOW - 2; i++) ceiling.record(false, 32, 13, () => ++judged, 5000 + i);
    expect(judged).toBe(0);
    ceiling.record(false, 32, 13, () => ++judged / 10, 6000);
    expect(judged).toBe(1);
  });

  it('the window\'s most requests in flight sets the count the pool must have reached', () => {
    const ceiling = new WorkerCeiling(policy);
    let last: number | undefined;
    for (let i = 0; i < CEILING_WINDOW; i++) last = ceiling.record(false, i === 5 ? 64 : 8, 12, idleLoop, i);
    expect(last).toBeUndefined();
    expect(ceiling.value).toBe(0.375); // 64 x 0.375 = 24 > 12 alive
  });

  it('max equal to start: a fixed ceiling', () => {
    const ceiling = new WorkerCeiling({ ...policy, max: 0.375 });
    clocked(ceiling)(0, 12);
    expect(ceiling.value).toBe(0.375);
  });
});

describe('resolveOptions', () => {
  it('fills documented defaults: minThreads = cores (>= 2), maxThreads 64, idle 5 s', () => {
    const options = resolveOptions(undefined);
    expect(options.minThreads).toBeGreaterThanOrEqual(2);
    expect(options).toMatchObject({ maxThreads: 64, idleTimeoutMs: 5000, growWhenSlowShare: 0.25, cachedBaseUs: 20, cachedBytesPerUs: 2000, maxHoldUs: 200, maxHeld: 16, completionBudgetUs: 500, threadsPerInFlight: 0.375 });
    expect(options).toMatchObject({ maxThreadsPerInFlight: 1, riseWhenSleptShareBelow: 0.1, riseWhenLoopBusyBelow: 0.75, fallWhenSleptShareAbove: 0.3, keepRiseWhenFasterBy: 0.02, workerCpus: 'completions' });
    // A ceiling's maximum below the default start lowers the start.
    expect(resolveOptions({ maxThreadsPerInFlight: 0.25 })).toMatchObject({ threadsPerInFlight: 0.25, maxThreadsPerInFlight: 0.25 });
  });

  it('threads fixes the size; min/max override it; a small max lowers the default min', () => {
    expect(resolveOptions({ threads: 3 })).toMatchObject({ minThreads: 3, maxThreads: 3 });
    expect(resolveOptions({ threads: 3, maxThreads: 8 })).toMatchObject({ minThreads: 3, maxThreads: 8 });
    expect(resolveOptions({ maxThreads: 1 })).toMatchObject({ minThreads: 1, maxThreads: 1 });
    expect(resolveOptions({ minThreads: 100 })).toMatchObject({ minThreads: 100, maxThreads: 100 });
    expect(resolveOptions({ minThreads: 0, maxThreads: 4 })).toMatchObject({ minThreads: 0, maxThreads: 4 });
  });

  it('bad options are typed errors naming the option and the value', () => {
    const bad: [object, string, string][] = [
      [{ minThreads: 5, maxThreads: 4 }, 'ERR_OUT_OF_RANGE', 'options.minThreads'],
      [{ maxThreads: 0 }, 'ERR_OUT_OF_RANGE', 'options.maxThreads'],
      [{ maxThreads: 257 }, 'ERR_OUT_OF_RANGE', '257'],
      [{ minThreads: -1 }, 'ERR_OUT_OF_RANGE', '-1'],
      [{ minThreads: '2' }, 'ERR_INVALID_ARG_TYPE', 'options.minThreads'],
      [{ idleTimeoutMs: 0 }, 'ERR_OUT_OF_RANGE', 'options.idleTimeoutMs'],
      [{ idleTimeoutMs: 1.5 }, 'ERR_OUT_OF_RANGE', '1.5'],
      [{ growWhenSlowShare: 2 }, 'ERR_OUT_OF_RANGE', 'options.growWhenSlowShare'],
      [{ growWhenSlowShare: Number.NaN }, 'ERR_OUT_OF_RANGE', 'NaN'],
      [{ cachedBaseUs: -1 }, 'ERR_OUT_OF_RANGE', 'options.cachedBaseUs'],
      [{ cachedBytesPerUs: 0 }, 'ERR_OUT_OF_RANGE', 'options.cachedBytesPerUs'],
      [{ maxHoldUs: -5 }, 'ERR_OUT_OF_RANGE', 'options.maxHoldUs'],
      [{ maxHeld: 0 }, 'ERR_OUT_OF_RANGE', 'options.maxHeld'],
      [{ completionBudgetUs: -1 }, 'ERR_OUT_OF_RANGE', 'options.completionBudgetUs'],
      [{ threadsPerInFlight: 0 }, 'ERR_OUT_OF_RANGE', 'options.threadsPerInFlight'],
      [{ threadsPerInFlight: 1.5 }, 'ERR_OUT_OF_RANGE', 'options.threadsPerInFlight'],
      [{ threadsPerInFlight: 0.5, maxThreadsPerInFlight: 0.4 }, 'ERR_OUT_OF_RANGE', 'options.maxThreadsPerInFlight (0.4)'],
      [{ maxThreadsPerInFlight: 0 }, 'ERR_OUT_OF_RANGE', 'options.maxThreadsPerInFlight'],
      [{ riseWhenSleptShareBelow: -0.1 }, 'ERR_OUT_OF_RANGE', 'options.riseWhenSleptShareBelow'],
      [{ riseWhenLoopBusyBelow: 2 }, 'ERR_OUT_OF_RANGE', 'options.riseWhenLoopBusyBelow'],
      [{ fallWhenSleptShareAbove: 'x' }, 'ERR_INVALID_ARG_TYPE', 'options.fallWhenSleptShareAbove'],
      [{ keepRiseWhenFasterBy: 2 }, 'ERR_OUT_OF_RANGE', 'options.keepRiseWhenFasterBy'],
      [{ keepRiseWhenFasterBy: -1.5 }, 'ERR_OUT_OF_RANGE', 'options.keepRiseWhenFasterBy'],
      [{ keepRiseWhenFasterBy: 'x' }, 'ERR_INVALID_ARG_TYPE', 'options.keepRiseWhenFasterBy'],
      [{ completionBudgetUs: 'x' }, 'ERR_INVALID_ARG_TYPE', 'options.completionBudgetUs'],
    ];
    for (const [options, code, named] of bad) {
      expect(() => resolveOptions(options), JSON.stringify(options)).toThrow(expect.objectContaining({ code, message: expect.stringContaining(named) }));
    }
    expect(() => resolveOptions(7)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

// Pure logic: LoopReads routes reads by the per-fd meter and a per-call budget.
describe('LoopReads (pure logic)', () => {
  const options = { budgetUs: 100, cachedBaseUs: 20, cachedBytesPerUs: 2000, policy: { window: 4, missesToCool: 2, missesToWarm: 1, firstPause: 4, maxPause: 8 } };
  const served = (serviceUs: number) => ({ served: true, missed: false, directFd: false, bytes: 4096, serviceUs });

  /** A LoopReads whose fd 5 is warm (a window of fallback hits reported). */
  function warmed(): { loop: LoopReads; meter: ColdReadMeter } {
    const loop = new LoopReads(options);
    const meter = loop.meterFor(5)!;
    expect(meter.cold).toBe(true); // every file starts on the workers
    for (let reads = 0; meter.cold; reads++) {
      expect(reads).toBeLessThan(20);
      // the read that ends the pause goes plain: the meter is warm by then
      expect(['cacheFirst', 'plain']).toContain(loop.route(meter));
      meter.recordFallback(true);
    }
    loop.handedOver();
    return { loop, meter };
  }

  it('routes a warm file here within the budget per hand-over, the rest plain', () => {
    const { loop, meter } = warmed();
    const routes = Array.from({ length: 40 }, () => loop.route(meter));
    expect(routes.filter((r) => r === 'here').length).toBe(25); // 100 us at the first estimate of 4 us
    expect(routes.slice(25).every((r) => r === 'plain')).toBe(true);
    loop.handedOver();
    expect(loop.route(meter)).toBe('here');
  });

  it('one preempted read does not stop reads here: the first of each call always fits, the estimate recovers', () => {
    const { loop, meter } = warmed();
    expect(loop.route(meter)).toBe('here');
    loop.settle(5, meter, served(50_000));
    loop.handedOver();
    expect(loop.route(meter)).toBe('here');
    for (let call = 0; call < 100; call++) {
      loop.settle(5, meter, served(2));
      loop.handedOver();
      loop.route(meter);
    }
    loop.handedOver();
    expect(Array.from({ length: 10 }, () => loop.route(meter)).every((r) => r === 'here')).toBe(true);
  });

  it('a budget of 0 never routes here; an O_DIRECT fd is never metered again; misses cool the file', () => {
    const none = new LoopReads({ ...options, budgetUs: 0 });
    const meter0 = none.meterFor(3)!;
    expect(Array.from({ length: 50 }, () => none.route(meter0)).includes('here')).toBe(false);
    const { loop, meter } = warmed();
    loop.settle(5, meter, { served: false, missed: false, directFd: true, bytes: 0, serviceUs: 0 });
    expect(loop.meterFor(5)).toBeUndefined();
    const fresh = warmed();
    for (let i = 0; i < 4; i++) {
      expect(fresh.loop.route(fresh.meter)).toBe('here');
      fresh.loop.settle(5, fresh.meter, { served: false, missed: true, directFd: false, bytes: 0, serviceUs: 3 });
    }
    expect(fresh.meter.cold).toBe(true);
    expect(fresh.loop.missed).toBe(4);
    expect(fresh.loop.route(fresh.meter)).toBe('cacheFirst');
  });
});
