import { describe, expect, it } from 'vitest';
import { ColdReadMeter } from '../src/cold-reads.js';

// The meter is shared by the io_submit backend (NOWAIT reads inside io_submit) and the
// thread pool (cached reads on the loop thread); their real-file tests live with them.
const policy = { window: 4, missesToCool: 2, missesToWarm: 1, firstPause: 3, maxPause: 6 };

/** Feeds `hits` (true = hit) to the meter, asking skipNowait() before each like the file does. */
function feed(meter: ColdReadMeter, hits: boolean[]): boolean[] {
  return hits.map((hit) => {
    const skipped = meter.skipNowait();
    if (!skipped) meter.record(hit);
    return skipped;
  });
}

// Pure logic (no I/O): the meter's window, pause and back-off.
describe('ColdReadMeter (pure logic)', () => {
  it('stays warm while fewer than missesToCool of a window miss', () => {
    const meter = new ColdReadMeter(policy);
    expect(feed(meter, [true, false, true, true, true, false, true, true])).toEqual(Array(8).fill(false));
    expect(meter.cold).toBe(false);
  });

  it('goes cold after a window of misses, skips NOWAIT for firstPause reads, then probes again', () => {
    const meter = new ColdReadMeter(policy);
    feed(meter, [false, false, true, true]);
    expect(meter.cold).toBe(true);
    expect(feed(meter, [true, true, true])).toEqual([true, true, true]);
    expect(meter.cold).toBe(false);
    // A warm probe window: no pause afterwards.
    expect(feed(meter, [true, true, true, true, true])).toEqual([false, false, false, false, false]);
  });

  it('doubles the pause while probes keep finding a cold file, up to maxPause, and resets once warm', () => {
    const meter = new ColdReadMeter(policy);
    const pauseAfterColdWindow = (): number => {
      feed(meter, [false, false, false, false]);
      let skipped = 0;
      while (meter.skipNowait()) skipped++;
      return skipped;
    };
    expect([pauseAfterColdWindow(), pauseAfterColdWindow(), pauseAfterColdWindow()]).toEqual([3, 6, 6]);
    feed(meter, [true, true, true, true]);
    expect(pauseAfterColdWindow()).toBe(3);
  });

  it('with fallback reports: never probes; a pause ends warm only if the last window of fallback reads hit', () => {
    const meter = new ColdReadMeter(policy, { fallbackReports: true });
    const skipsUntilWarm = (limit: number): number => {
      let skipped = 0;
      while (skipped < limit && meter.skipNowait()) skipped++;
      return skipped;
    };
    feed(meter, [false, false, true, true]);
    expect(meter.cold).toBe(true);
    // No report yet: pause after pause (3, 6, 6...), never a NOWAIT read.
    expect(skipsUntilWarm(100)).toBe(100);
    expect(meter.cold).toBe(true);
    // A window with one miss is not warm enough (missesToWarm 1)...
    for (const hit of [true, false, true, true]) meter.recordFallback(hit);
    meter.record(true); // ...and a NOWAIT read from before the file went cold is ignored.
    expect(skipsUntilWarm(100)).toBe(100);
    // A window of hits: the current pause runs out (at most maxPause reads), then warm.
    for (const hit of [true, true, true, true]) meter.recordFallback(hit);
    expect(skipsUntilWarm(100)).toBeLessThanOrEqual(6);
    expect(meter.cold).toBe(false);
    expect(meter.skipNowait()).toBe(false);
    meter.recordFallback(false); // a fallback read from before it warmed: ignored
    expect(feed(meter, [true, true, true, true])).toEqual([false, false, false, false]);
    expect(meter.cold).toBe(false);
  });

  it('ignores results of reads that started before the file went cold', () => {
    const meter = new ColdReadMeter(policy);
    feed(meter, [false, false, false, false]);
    meter.record(false); // in flight when the window closed
    let skipped = 0;
    while (meter.skipNowait()) skipped++;
    expect(skipped).toBe(3);
  });
});
