import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFsFdIo } from '@vmlink/aio';
import { createThreadPoolIo } from '@vmlink/aio-threadpool';
import { createIoSubmitBackend } from '../src/index.js';
import type { IoSubmitFile } from '../src/file.js';
import { dropFileCache, scratchDir, writeRandomFile } from './helpers.js';

describe('cold buffered files on a real file system', () => {
  const scratch = scratchDir();

  afterAll(() => {
    scratch.remove();
  });

  it('with a fallback that cannot tell cache hits (node:fs), a window of NOWAIT misses sends the file to the fallback', async () => {
    const MiB = 1 << 20;
    const path = join(scratch.dir, 'cold.bin');
    const data = writeRandomFile(path, 48 * MiB);
    dropFileCache(path);
    const probing = await createIoSubmitBackend({ fallback: createFsFdIo() });
    try {
      const file = (await probing.open(path, 'r')) as IoSubmitFile;
      const buffer = Buffer.alloc(4096);
      expect(file.coldReads).toBe(false);
      // 1 MiB apart: far beyond any readahead window, so each NOWAIT read misses.
      for (let i = 0; i < 32; i++) {
        expect(await file.read(buffer, i * MiB)).toBe(4096);
        expect(buffer.equals(data.subarray(i * MiB, i * MiB + 4096))).toBe(true);
      }
      // Each miss either says EAGAIN or, where the virtual disk answers within the VM exit
      // that submits the readahead, succeeds after a slow io_submit: both count as misses.
      const probed = probing.stats();
      expect(file.coldReads).toBe(true);

      const offset = 40 * MiB + 8192;
      expect(await file.read(buffer, offset)).toBe(4096);
      expect(buffer.equals(data.subarray(offset, offset + 4096))).toBe(true);
      const after = probing.stats();
      expect(after.guardRouted - probed.guardRouted).toBe(1);
      expect(after.nowaitFallbacks - probed.nowaitFallbacks).toBe(0);
      await file.close();
    } finally {
      await probing.close();
    }
  });

  it('a cold file makes no io_submit reads while it stays cold, and goes back to io_submit once its cache is warm', async () => {
    const MiB = 1 << 20;
    const path = join(scratch.dir, 'cold-then-warm.bin');
    const data = writeRandomFile(path, 48 * MiB);
    dropFileCache(path);
    // Misses judged by the cache alone (EAGAIN, or the pool's NOWAIT report), not by time:
    // on a loaded machine a preempted io_submit of a cached page looks slow, counts as a
    // miss, and four of them in the last window cool the warm file again (seen in CI: 32
    // of the 64 warm reads routed). The same on the pool: a worker preempted in a cached
    // NOWAIT read looks slower than a copy (seen in CI: the file never warmed in 5000
    // reads), so the fallback is the default's pool with a copy time no preemption exceeds.
    // Which calls count as slow is unit-tested (submit-policy.test.ts, policy.test.ts).
    const pool = createThreadPoolIo({ cachedReadsOnLoop: false, cachedBaseUs: 1_000_000 });
    const timeBlind = await createIoSubmitBackend({ slowSubmitUsPerIocb: 1_000_000, fallback: pool });
    try {
      const file = (await timeBlind.open(path, 'r')) as IoSubmitFile;
      const buffer = Buffer.alloc(4096);
      // With the thread pool as the fallback a buffered file starts cold: its first reads
      // go to the pool, and not one NOWAIT miss starts readahead inside io_submit.
      expect(file.coldReads).toBe(true);
      const start = timeBlind.stats();
      for (let i = 0; i < 32; i++) await file.read(buffer, i * MiB);
      expect(file.coldReads).toBe(true);
      expect(timeBlind.stats().nowaitFallbacks - start.nowaitFallbacks).toBe(0);

      // More reads than the first pause of a probing meter (256 reads, then a window of 32
      // NOWAIT probes), all cold (distinct pages far apart: no readahead brings the next one
      // in): with the thread pool as the fallback, none of them is a NOWAIT probe in io_submit.
      dropFileCache(path);
      const cold = timeBlind.stats();
      const reads = 600;
      const page = (n: number): number => ((n * 7919) % 12_288) * 4096;
      for (let i = 0; i < reads; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, k) => file.read(Buffer.alloc(4096), page(i + k))));
      }
      const stillCold = timeBlind.stats();
      expect(stillCold.nowaitFallbacks - cold.nowaitFallbacks).toBe(0);
      expect(stillCold.guardRouted - cold.guardRouted).toBe(reads);

      // Warm the whole file: once the current pause runs out (at most 4096 reads), the last
      // window of fallback reads hit, and reads return to io_submit.
      readFileSync(path);
      let warmAfter = 0;
      while (file.coldReads && warmAfter < 5000) {
        const offset = page(warmAfter);
        expect(await file.read(buffer, offset)).toBe(4096);
        expect(buffer.equals(data.subarray(offset, offset + 4096))).toBe(true);
        warmAfter++;
      }
      expect(file.coldReads).toBe(false);
      const warm = timeBlind.stats();
      for (let i = 0; i < 64; i++) expect(await file.read(buffer, page(i))).toBe(4096);
      const after = timeBlind.stats();
      expect(after.guardRouted - warm.guardRouted).toBe(0);
      expect(after.nowaitFallbacks - warm.nowaitFallbacks).toBe(0);
      await file.close();
    } finally {
      await timeBlind.close();
      await pool.close(); // given, so not the backend's to close
    }
  }, 60_000); // liveness only: ~700 cold reads on a shared disk

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
      await file.close();
    } finally {
      await nowait.close();
    }
  });

  it('moves a warm file to io_submit after its first reads on the pool hit, and keeps it there', async () => {
    // Hits and misses are judged by the clock on both sides (the pool's cache-first read by
    // its copy time, io_submit calls by slowSubmitUsPerIocb), and a CPU-starved run sees
    // slow calls that did no I/O. Those thresholds are options: here a call must take 1 s
    // per request to count as I/O, and a window of pool reads is warm unless all of them
    // missed, so only the kernel's own answers (EAGAIN, short reads) decide. The real
    // path is the same: a real warm file, the real pool, real NOWAIT reads in io_submit.
    const judged = await createIoSubmitBackend({ slowSubmitUsPerIocb: 1_000_000, coldReads: { missesToWarm: 32 } });
    const path = join(scratch.dir, 'warm.bin');
    const data = writeRandomFile(path, 1 << 20);
    readFileSync(path);
    try {
      const file = (await judged.open(path, 'r')) as IoSubmitFile;
      const buffer = Buffer.alloc(4096);
      expect(file.coldReads).toBe(true);
      let reads = 0;
      while (file.coldReads && reads < 1000) await file.read(buffer, (reads++ % 256) * 4096);
      // One window, then at most the first pause (256 reads), as the reports come in.
      expect(reads).toBeLessThanOrEqual(32 + 256);
      expect(file.coldReads).toBe(false);
      const warm = judged.stats();
      for (let i = 0; i < 256; i++) {
        expect(await file.read(buffer, i * 4096)).toBe(4096);
        expect(buffer.equals(data.subarray(i * 4096, (i + 1) * 4096))).toBe(true);
      }
      const after = judged.stats();
      expect(file.coldReads).toBe(false);
      expect(after.guardRouted - warm.guardRouted).toBe(0);
      expect(after.nowaitFallbacks - warm.nowaitFallbacks).toBe(0);
      expect(after.batchSize.count - warm.batchSize.count).toBeGreaterThanOrEqual(256);
      await file.close();
    } finally {
      await judged.close();
    }
  });
});
