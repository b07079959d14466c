import { describe, expect, it } from 'vitest';
import { LogHistogram, StatsRecorder } from '../src/index.js';
import { bucketOf } from '../src/histogram.js';

// Pure logic: no I/O involved.
describe('LogHistogram', () => {
  it('puts every value in the bucket of floor(log2) and its eighth, at octave edges too', () => {
    const reference = (v: number): number => {
      if (v < 1) return Math.floor(v * 8);
      const octave = Math.min(40, Math.floor(Math.log2(v)));
      const base = 2 ** octave;
      return 8 * (octave + 1) + Math.min(7, Math.floor(((v - base) / base) * 8));
    };
    const values = [0, 0.5, 0.999, 1, 1.124, 1.125, 3, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 0.5, 2 ** 32, 2 ** 40, 2 ** 45];
    for (let octave = 0; octave < 41; octave++) {
      const base = 2 ** octave;
      values.push(base, base * 1.0625, base * 1.99, base * 2 - 2 ** (octave - 40));
    }
    for (let i = 0; i < 2000; i++) values.push(Math.random() * 2 ** (i % 44));
    for (const value of values) expect([value, bucketOf(value)]).toEqual([value, reference(value)]);
  });

  it('summarises an empty histogram as zeros', () => {
    expect(new LogHistogram().summary()).toEqual({ count: 0, min: 0, max: 0, mean: 0, p50: 0, p90: 0, p99: 0 });
  });

  it('gives exact min/max/mean and percentiles within one bucket (12.5%)', () => {
    const histogram = new LogHistogram();
    for (let v = 1; v <= 1000; v++) histogram.record(v);
    const summary = histogram.summary();
    expect(summary.count).toBe(1000);
    expect(summary.min).toBe(1);
    expect(summary.max).toBe(1000);
    expect(summary.mean).toBeCloseTo(500.5);
    for (const [p, exact] of [[summary.p50, 500], [summary.p90, 900], [summary.p99, 990]] as const) {
      expect(p).toBeGreaterThanOrEqual(exact);
      expect(p).toBeLessThanOrEqual(exact * 1.125);
    }
  });

  it('handles sub-microsecond, huge and odd values', () => {
    const histogram = new LogHistogram();
    histogram.record(0.01);
    histogram.record(0);
    histogram.record(-5);
    histogram.record(Number.NaN);
    histogram.record(2 ** 50);
    const summary = histogram.summary();
    expect(summary.count).toBe(4);
    expect(summary.min).toBe(0);
    expect(summary.max).toBe(2 ** 50);
    expect(summary.p99).toBe(2 ** 50);
    expect(summary.p50).toBeLessThan(1);
    histogram.reset();
    expect(histogram.count).toBe(0);
  });

  it('p50 of a single repeated value is that value', () => {
    const histogram = new LogHistogram();
    for (let i = 0; i < 10; i++) histogram.record(37);
    expect(histogram.summary()).toMatchObject({ p50: 37, p90: 37, p99: 37, min: 37, max: 37 });
  });
});

describe('StatsRecorder', () => {
  it('tracks counts, in-flight and histograms', () => {
    const recorder = new StatsRecorder();
    recorder.submitted(3);
    recorder.batch(3, 12);
    recorder.queueWait(4);
    recorder.serviceTime(100);
    recorder.settled(true);
    recorder.settled(false);
    recorder.nowaitFallback();
    recorder.guardRouted();
    recorder.alignmentRejection();
    const stats = recorder.snapshot();
    expect(stats).toMatchObject({ submitted: 3, completed: 1, failed: 1, inFlight: 1, nowaitFallbacks: 1, guardRouted: 1, alignmentRejections: 1 });
    expect(stats.batchSize).toMatchObject({ count: 1, max: 3 });
    expect(stats.submitTimeUs).toMatchObject({ count: 1, max: 12 });
    expect(stats.queueWaitUs.count).toBe(1);
    expect(stats.serviceTimeUs.max).toBe(100);
  });
});
