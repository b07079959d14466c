import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ColdReadMeter } from '../src/cold-reads.js';
import { createIoSubmitBackend, type IoSubmitBackend } from '../src/index.js';
import type { IoSubmitFile } from '../src/file.js';
import { dropFileCache, scratchDir, writeRandomFile } from './helpers.js';

const policy = { window: 4, missesToCool: 2, firstPause: 3, maxPause: 6 };

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

  it('ignores results of reads that started before the file went cold', () => {
    const meter = new ColdReadMeter(policy);
    feed(meter, [false, false, false, false]);
    meter.record(false); // in flight when the window closed
    let skipped = 0;
    while (meter.skipNowait()) skipped++;
    expect(skipped).toBe(3);
  });
});

describe('cold buffered files on a real file system', () => {
  const scratch = scratchDir();
  let backend: IoSubmitBackend;

  beforeAll(async () => {
    backend = await createIoSubmitBackend();
  });
  afterAll(async () => {
    await backend.close();
    scratch.remove();
  });

  it('sends the reads of a file that keeps missing the cache to the fallback, with the right bytes', async () => {
    const MiB = 1 << 20;
    const path = join(scratch.dir, 'cold.bin');
    const data = writeRandomFile(path, 48 * MiB);
    dropFileCache(path);
    const file = (await backend.open(path, 'r')) as IoSubmitFile;
    const buffer = Buffer.alloc(4096);
    const start = backend.stats();
    // 1 MiB apart: far beyond any readahead window, so each NOWAIT read misses.
    for (let i = 0; i < 32; i++) {
      expect(await file.read(buffer, i * MiB)).toBe(4096);
      expect(buffer.equals(data.subarray(i * MiB, i * MiB + 4096))).toBe(true);
    }
    const probed = backend.stats();
    expect(probed.nowaitFallbacks - start.nowaitFallbacks).toBeGreaterThanOrEqual(16);
    expect(file.coldReads).toBe(true);

    const offset = 40 * MiB + 8192;
    expect(await file.read(buffer, offset)).toBe(4096);
    expect(buffer.equals(data.subarray(offset, offset + 4096))).toBe(true);
    const after = backend.stats();
    expect(after.guardRouted - probed.guardRouted).toBe(1);
    expect(after.nowaitFallbacks - probed.nowaitFallbacks).toBe(0);
    await file.close();
  });

  it("bufferedReads: 'nowait' keeps every buffered read on io_submit + NOWAIT, cold or not", async () => {
    const MiB = 1 << 20;
    const path = join(scratch.dir, 'cold-nowait.bin');
    writeRandomFile(path, 40 * MiB);
    dropFileCache(path);
    const nowait = await createIoSubmitBackend({ bufferedReads: 'nowait' });
    try {
      const file = (await nowait.open(path, 'r')) as IoSubmitFile;
      const buffer = Buffer.alloc(4096);
      for (let i = 0; i < 40; i++) await file.read(buffer, i * MiB);
      const stats = nowait.stats();
      expect(file.coldReads).toBe(false);
      expect(stats.guardRouted).toBe(0);
      expect(stats.nowaitFallbacks).toBeGreaterThanOrEqual(16);
      await file.close();
    } finally {
      await nowait.close();
    }
  });

  it('keeps a warm file on io_submit', async () => {
    const path = join(scratch.dir, 'warm.bin');
    writeRandomFile(path, 1 << 20);
    const file = (await backend.open(path, 'r')) as IoSubmitFile;
    const buffer = Buffer.alloc(4096);
    for (let i = 0; i < 64; i++) await file.read(buffer, (i % 256) * 4096);
    expect(file.coldReads).toBe(false);
    await file.close();
  });
});
