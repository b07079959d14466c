// Pure logic (no threads, no files): when the pool polls. The addon's counters are stood
// in for by a plain object (a fake of pollStats(), named so); the real ones are tested in
// native/test/aio.test.mts and polling-pool.test.ts.
import { describe, expect, it } from 'vitest';
import {
  busyShare,
  DEFAULT_POLL_US,
  DEFAULT_POLL_WHILE_HIT_SHARE_ABOVE,
  defaultPollWhenInFlightAtMost,
  Polling,
  POLL_BACKOFF_WINDOWS,
  POLL_MIN_SAMPLES,
  POLL_WINDOW,
  resolveOptions,
} from '../src/index.js';

const policy = { pollUs: 100, maxInFlight: 2, minHitShare: 0.5, loopAtAnyDepthWhenWorkersHeld: true };
/** The loop thread and a worker both wait 100 us; neither waits. */
const BOTH = { loopUs: 100, workerUs: 100 };
const OFF = { loopUs: 0, workerUs: 0 };
/** Only the loop thread waits (more in flight than maxInFlight, the workers held off its CPU). */
const LOOP_ONLY = { loopUs: 100, workerUs: 0 };

/** A fake of the addon's pollStats() counters that the test moves by hand. */
function fakeCounts() {
  const counts = { polls: 0, hits: 0, reads: 0 };
  const read = () => {
    counts.reads++;
    return { polls: counts.polls, hits: counts.hits };
  };
  return { counts, read };
}

describe('Polling', () => {
  it('a hand-over turns it on while at most maxInFlight requests are in flight, off above; says so only when it changes', () => {
    const { read } = fakeCounts();
    const polling = new Polling(policy, read);
    expect(polling.on).toBe(false);
    expect(polling.submitted(1)).toEqual(BOTH);
    expect(polling.on).toBe(true);
    expect(polling.submitted(2)).toBeUndefined();
    expect(polling.submitted(3)).toEqual(OFF);
    expect(polling.on).toBe(false);
    expect(polling.submitted(32)).toBeUndefined();
    expect(polling.submitted(2)).toEqual(BOTH);
    // Nothing in flight keeps it on: the addon does not spin then, and a burst that starts
    // again does not pay a native call to turn it back on.
    expect(polling.submitted(0)).toBeUndefined();
    expect(polling.on).toBe(true);
  });

  it('completions never turn it on or off by depth (that would flip it per batch)', () => {
    const polling = new Polling(policy, fakeCounts().read);
    polling.submitted(8);
    for (let i = 0; i < 10; i++) expect(polling.completed(7)).toBeUndefined();
    expect(polling.on).toBe(false);
    polling.submitted(1);
    for (let i = 0; i < 10; i++) expect(polling.completed(1)).toBeUndefined();
    expect(polling.on).toBe(true);
  });

  it('pollUs 0 never polls', () => {
    const polling = new Polling({ ...policy, pollUs: 0 }, fakeCounts().read);
    for (const inFlight of [0, 1, 2, 100]) expect(polling.submitted(inFlight)).toBeUndefined();
    expect(polling.completed(POLL_WINDOW * 2)).toBeUndefined();
    expect(polling.on).toBe(false);
  });

  it('reads the counters when it turns on and once per window of completions, not per call', () => {
    const { counts, read } = fakeCounts();
    const polling = new Polling(policy, read);
    polling.submitted(1);
    expect(counts.reads).toBe(1);
    for (let i = 0; i < POLL_WINDOW - 1; i++) {
      polling.completed(1);
      polling.submitted(1);
    }
    expect(counts.reads).toBe(1);
    polling.completed(1);
    expect(counts.reads).toBe(2);
  });

  it('a window of mostly missed waits turns it off for POLL_BACKOFF_WINDOWS windows of completions, then a hand-over tries again', () => {
    const { counts, read } = fakeCounts();
    const polling = new Polling(policy, read);
    polling.submitted(1);
    counts.polls += 200;
    counts.hits += 99; // 49.5%: below 0.5
    expect(polling.completed(POLL_WINDOW)).toEqual(OFF);
    expect(polling.on).toBe(false);
    for (let left = POLL_WINDOW * POLL_BACKOFF_WINDOWS; left > 0; left--) {
      expect(polling.submitted(1)).toBeUndefined();
      expect(polling.completed(1)).toBeUndefined();
    }
    expect(polling.submitted(1)).toEqual(BOTH);
    // The new stretch is judged on its own waits: a good window keeps it on.
    counts.polls += 200;
    counts.hits += 150;
    expect(polling.completed(POLL_WINDOW)).toBeUndefined();
    expect(polling.on).toBe(true);
  });

  it('keeps polling on a window of mostly hits, and on one with too few waits to judge', () => {
    const { counts, read } = fakeCounts();
    const polling = new Polling(policy, read);
    polling.submitted(1);
    counts.polls += 200;
    counts.hits += 100; // exactly 0.5 is not below it
    expect(polling.completed(POLL_WINDOW)).toBeUndefined();
    counts.polls += POLL_MIN_SAMPLES - 1; // all missed, but too few to say
    expect(polling.completed(POLL_WINDOW)).toBeUndefined();
    expect(polling.on).toBe(true);
    counts.polls += POLL_MIN_SAMPLES; // enough, all missed
    expect(polling.completed(POLL_WINDOW)).toEqual(OFF);
  });

  it('waits counted while it was off (another stretch) do not count against a new stretch', () => {
    const { counts, read } = fakeCounts();
    const polling = new Polling(policy, read);
    polling.submitted(1);
    polling.submitted(8); // off: too many in flight
    counts.polls += 1000; // say the counters moved meanwhile, all misses
    polling.submitted(1); // on again: reads them as the new base
    counts.polls += 100;
    counts.hits += 90;
    expect(polling.completed(POLL_WINDOW)).toBeUndefined();
    expect(polling.on).toBe(true);
  });

  it('workers held off one of the CPUs: the loop thread polls at any depth, the workers spin only up to maxInFlight', () => {
    const { counts, read } = fakeCounts();
    const polling = new Polling(policy, read);
    polling.workersHeld = true;
    expect(polling.submitted(32)).toEqual(LOOP_ONLY);
    expect(polling.on).toBe(true);
    expect(polling.workersSpin).toBe(false);
    expect(counts.reads).toBe(1); // a new stretch: its base read
    expect(polling.submitted(31)).toBeUndefined();
    expect(polling.submitted(2)).toEqual(BOTH);
    expect(polling.workersSpin).toBe(true);
    expect(counts.reads).toBe(1); // the loop's stretch goes on: same base
    expect(polling.submitted(3)).toEqual(LOOP_ONLY);
    // Held no more (the file on that disk closed): the depth limit is back at the next hand-over.
    polling.workersHeld = false;
    expect(polling.submitted(3)).toEqual(OFF);
    expect(polling.on).toBe(false);
    polling.workersHeld = true;
    expect(polling.submitted(3)).toEqual(LOOP_ONLY);
  });

  it('a window of mostly missed waits turns the deep polling off too, and loopAtAnyDepthWhenWorkersHeld false keeps the depth limit', () => {
    const { counts, read } = fakeCounts();
    const polling = new Polling(policy, read);
    polling.workersHeld = true;
    polling.submitted(32);
    counts.polls += 200;
    counts.hits += 20;
    expect(polling.completed(POLL_WINDOW)).toEqual(OFF);
    expect(polling.submitted(32)).toBeUndefined(); // backing off
    const limited = new Polling({ ...policy, loopAtAnyDepthWhenWorkersHeld: false }, fakeCounts().read);
    limited.workersHeld = true;
    expect(limited.submitted(32)).toBeUndefined();
    expect(limited.on).toBe(false);
    expect(limited.submitted(1)).toEqual(BOTH);
  });

  it('pollUs 0 never polls, held workers or not', () => {
    const polling = new Polling({ ...policy, pollUs: 0 }, fakeCounts().read);
    polling.workersHeld = true;
    for (const inFlight of [1, 32]) expect(polling.submitted(inFlight)).toBeUndefined();
    expect(polling.on).toBe(false);
  });
});

describe('busyShare', () => {
  it('is event-loop utilization without the time spent polling, within 0..1', () => {
    expect(busyShare(30, 70, 0)).toBeCloseTo(0.3);
    expect(busyShare(90, 10, 60)).toBeCloseTo(0.3);
    expect(busyShare(10, 90, 20)).toBe(0); // more polling than activity: never negative
    expect(busyShare(0, 0, 0)).toBe(0);
    expect(busyShare(120, 0, 0)).toBe(1);
  });
});

describe('polling options', () => {
  it('defaults: 100 us, as many in flight as cores, 0.5 hit share', () => {
    const options = resolveOptions(undefined);
    expect(options.pollUs).toBe(DEFAULT_POLL_US);
    expect(DEFAULT_POLL_US).toBe(100);
    expect(options.pollWhenInFlightAtMost).toBe(defaultPollWhenInFlightAtMost());
    expect(options.pollWhileHitShareAbove).toBe(DEFAULT_POLL_WHILE_HIT_SHARE_ABOVE);
    expect(options.pollLoopWhileWorkersHeld).toBe(true);
    expect(resolveOptions({ pollLoopWhileWorkersHeld: false }).pollLoopWhileWorkersHeld).toBe(false);
    expect(resolveOptions({ pollUs: 0, pollWhenInFlightAtMost: 0, pollWhileHitShareAbove: 1 })).toMatchObject({
      pollUs: 0,
      pollWhenInFlightAtMost: 0,
      pollWhileHitShareAbove: 1,
    });
  });

  it('polls up to as many requests as cores, and not at all on one core (the spinner would hold the only CPU)', () => {
    expect(defaultPollWhenInFlightAtMost(1)).toBe(0);
    expect(defaultPollWhenInFlightAtMost(2)).toBe(2);
    expect(defaultPollWhenInFlightAtMost(8)).toBe(8);
    const polling = new Polling({ ...policy, maxInFlight: defaultPollWhenInFlightAtMost(1) }, fakeCounts().read);
    expect(polling.submitted(1)).toBeUndefined();
    expect(polling.on).toBe(false);
  });

  it('bad values: typed errors naming the option and the value', () => {
    for (const [options, code, text] of [
      [{ pollUs: -1 }, 'ERR_OUT_OF_RANGE', 'options.pollUs'],
      [{ pollUs: 10_001 }, 'ERR_OUT_OF_RANGE', '10001'],
      [{ pollUs: 1.5 }, 'ERR_OUT_OF_RANGE', 'options.pollUs'],
      [{ pollUs: '100' }, 'ERR_INVALID_ARG_TYPE', 'options.pollUs'],
      [{ pollWhenInFlightAtMost: -1 }, 'ERR_OUT_OF_RANGE', 'options.pollWhenInFlightAtMost'],
      [{ pollWhenInFlightAtMost: 2000 }, 'ERR_OUT_OF_RANGE', '2000'],
      [{ pollWhileHitShareAbove: 1.5 }, 'ERR_OUT_OF_RANGE', 'options.pollWhileHitShareAbove'],
      [{ pollWhileHitShareAbove: Number.NaN }, 'ERR_OUT_OF_RANGE', 'options.pollWhileHitShareAbove'],
      [{ pollWhileHitShareAbove: null }, 'ERR_INVALID_ARG_TYPE', 'options.pollWhileHitShareAbove'],
      [{ pollLoopWhileWorkersHeld: 1 }, 'ERR_INVALID_ARG_TYPE', 'options.pollLoopWhileWorkersHeld'],
    ] as const) {
      expect(() => resolveOptions(options), JSON.stringify(options)).toThrow(expect.objectContaining({ code, message: expect.stringContaining(text) }));
    }
  });
});
