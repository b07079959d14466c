import { readFileSync } from 'node:fs';
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

  it('with fallback reports: stays cold without probing until a window of fallback reads hits the cache', () => {
    const meter = new ColdReadMeter(policy, { fallbackReports: true });
    feed(meter, [false, false, true, true]);
    expect(meter.cold).toBe(true);
    // No count-down: far past firstPause and maxPause, every read still skips NOWAIT.
    for (let i = 0; i < 20; i++) expect(meter.skipNowait()).toBe(true);
    meter.recordFallback(false);
    meter.recordFallback(true);
    meter.recordFallback(false);
    meter.recordFallback(true); // 2 misses of 4: still cold
    expect(meter.cold).toBe(true);
    meter.record(true); // a NOWAIT read from before the file went cold: ignored
    for (const hit of [true, true, false, true]) meter.recordFallback(hit);
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

  it('a cold file makes no io_submit reads while it stays cold, and goes back to io_submit once its cache is warm', async () => {
    const MiB = 1 << 20;
    const path = join(scratch.dir, 'cold-then-warm.bin');
    const data = writeRandomFile(path, 48 * MiB);
    dropFileCache(path);
    const file = (await backend.open(path, 'r')) as IoSubmitFile;
    const buffer = Buffer.alloc(4096);
    for (let i = 0; i < 32; i++) await file.read(buffer, i * MiB);
    expect(file.coldReads).toBe(true);

    // More reads than the first pause of a probing meter (256 reads, then a window of 32
    // NOWAIT probes), all cold (distinct pages far apart: no readahead brings the next one
    // in): with the thread pool as the fallback, none of them is a NOWAIT probe in io_submit.
    dropFileCache(path);
    const cold = backend.stats();
    const reads = 600;
    const page = (n: number): number => ((n * 7919) % 12_288) * 4096;
    for (let i = 0; i < reads; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => file.read(Buffer.alloc(4096), page(i + k))));
    }
    const stillCold = backend.stats();
    expect(stillCold.nowaitFallbacks - cold.nowaitFallbacks).toBe(0);
    expect(stillCold.guardRouted - cold.guardRouted).toBe(reads);

    // Warm the whole file: the next window of fallback reads hits, and reads return to io_submit.
    readFileSync(path);
    for (let i = 0; i < 64; i++) {
      expect(await file.read(buffer, i * 4096 + 8 * MiB)).toBe(4096);
      expect(buffer.equals(data.subarray(i * 4096 + 8 * MiB, (i + 1) * 4096 + 8 * MiB))).toBe(true);
    }
    expect(file.coldReads).toBe(false);
    const warm = backend.stats();
    expect(warm.guardRouted - stillCold.guardRouted).toBeLessThan(64);
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
