/**
 * OutputRing, the per-stream memory of a detached process: pure logic (no processes).
 * What it keeps, what it counts as dropped, and that its memory follows its capacity
 * however the output is chunked.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OutputRing } from '../src/detached/output-ring.js';

describe('OutputRing (pure logic)', () => {
  it('keeps everything below capacity, readable from any absolute offset', () => {
    const ring = new OutputRing(100);
    ring.write(Buffer.from('hello '));
    ring.write(Buffer.from('world'));
    expect(ring.total).toBe(11);
    expect(ring.kept).toBe(11);
    expect(ring.dropped).toBe(0);
    expect(ring.read(0, 100).toString()).toBe('hello world');
    expect(ring.read(6, 100).toString()).toBe('world');
    expect(ring.read(6, 3).toString()).toBe('wor');
    expect(ring.read(11, 100).length).toBe(0);
  });

  it('drops the oldest bytes past capacity and counts them; a read behind the start starts at the oldest kept byte', () => {
    const ring = new OutputRing(10);
    ring.write(Buffer.from('0123456789'));
    ring.write(Buffer.from('abcde'));
    expect(ring.total).toBe(15);
    expect(ring.kept).toBe(10);
    expect(ring.dropped).toBe(5);
    expect(ring.start).toBe(5);
    expect(ring.read(0, 100).toString()).toBe('56789abcde');
  });

  it('a chunk larger than the capacity keeps only its tail', () => {
    const ring = new OutputRing(4);
    ring.write(Buffer.from('ab'));
    ring.write(Buffer.from('0123456789'));
    expect(ring.read(0, 100).toString()).toBe('6789');
    expect(ring.dropped).toBe(8);
    expect(ring.total).toBe(12);
  });

  it('matches a reference model across random chunk sizes that straddle its blocks', () => {
    const capacity = 40_000;
    const ring = new OutputRing(capacity);
    let all = Buffer.alloc(0);
    for (let i = 0; i < 300; i += 1) {
      const size = [1, 7, 4096, 16_384, 16_385, 50_000][i % 6] as number;
      const chunk = randomBytes(size);
      ring.write(chunk);
      all = Buffer.concat([all, chunk]).subarray(-capacity * 2);
    }
    const kept = all.subarray(-capacity);
    expect(ring.kept).toBe(capacity);
    expect(ring.read(0, capacity).equals(kept)).toBe(true);
    expect(ring.read(ring.total - 100, 1000).equals(kept.subarray(-100))).toBe(true);
  });

  it('memory follows the capacity: a million 1-byte writes into a 64 KiB ring allocate about 64 KiB', () => {
    const ring = new OutputRing(64 * 1024);
    const one = Buffer.from('x');
    for (let i = 0; i < 1_000_000; i += 1) ring.write(one);
    expect(ring.total).toBe(1_000_000);
    expect(ring.kept).toBe(64 * 1024);
    // Capacity plus at most two partly used blocks (head and tail).
    expect(ring.allocated).toBeLessThanOrEqual(64 * 1024 + 2 * 16 * 1024);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new OutputRing(0)).toThrow(RangeError);
    expect(() => new OutputRing(1.5)).toThrow(/positive integer/);
  });
});
