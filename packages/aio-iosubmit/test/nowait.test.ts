import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { allocAligned, O_DIRECT } from '@vmlink/aio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIoSubmitBackend, type IoSubmitBackend } from '../src/index.js';
import { dropFileCache, scratchDir, writeRandomFile } from './helpers.js';

describe('RWF_NOWAIT reads', () => {
  const scratch = scratchDir();
  let backend: IoSubmitBackend;

  beforeAll(async () => {
    // 'nowait' pins buffered reads to io_submit: the default ('adaptive') starts a buffered
    // file on the thread pool until its reads there show that the page cache serves it.
    backend = await createIoSubmitBackend({ bufferedReads: 'nowait' });
  });
  afterAll(async () => {
    await backend.close();
    scratch.remove();
  });

  it('serves a warm buffered read inside the io_submit batch', async () => {
    const path = join(scratch.dir, 'warm.bin');
    const data = writeRandomFile(path, 64 * 1024);
    const file = await backend.open(path, 'r');
    const buffer = Buffer.alloc(4096);
    await file.read(buffer, 0); // warms the page (a miss would go to the fallback)
    const before = backend.stats();
    expect(await file.read(buffer, 0)).toBe(4096);
    const after = backend.stats();
    expect(after.nowaitFallbacks - before.nowaitFallbacks).toBe(0);
    expect(after.guardRouted - before.guardRouted).toBe(0);
    expect(after.batchSize.count - before.batchSize.count).toBe(1);
    expect(buffer.equals(data.subarray(0, 4096))).toBe(true);
    await file.close();
  });

  it('retries a NOWAIT read that says EAGAIN on the fallback and returns the right bytes', async () => {
    // An O_DIRECT read over dirty page-cache pages must flush them first: with NOWAIT the
    // kernel says EAGAIN instead, every time (a cold buffered read is no such certainty:
    // on a host-cached virtual disk its readahead can finish inside io_submit).
    const path = join(scratch.dir, 'dirty.bin');
    writeRandomFile(path, 1 << 20);
    const fresh = randomBytes(4096);
    const writer = openSync(path, 'r+');
    try {
      writeSync(writer, fresh, 0, 4096, 256 * 1024); // dirty, not synced
      const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      const before = backend.stats();
      const buffer = allocAligned(4096);
      expect(await file.read(buffer, 256 * 1024)).toBe(4096);
      expect(buffer.equals(fresh)).toBe(true);
      const after = backend.stats();
      expect(after.nowaitFallbacks - before.nowaitFallbacks).toBe(1);
      expect(after.failed - before.failed).toBe(0);
      await file.close();
    } finally {
      closeSync(writer);
    }
  });

  it('returns the right bytes for a cold buffered read, whichever way NOWAIT ends', async () => {
    const path = join(scratch.dir, 'cold.bin');
    const data = writeRandomFile(path, 1 << 20);
    dropFileCache(path);
    const file = await backend.open(path, 'r');
    const before = backend.stats();
    const buffer = Buffer.alloc(64 * 1024);
    expect(await file.read(buffer, 512 * 1024)).toBe(buffer.length);
    expect(buffer.equals(data.subarray(512 * 1024, 576 * 1024))).toBe(true);
    const after = backend.stats();
    // EAGAIN and a retry on the fallback, or a NOWAIT read that did the I/O in the call.
    expect(after.nowaitFallbacks - before.nowaitFallbacks).toBeLessThanOrEqual(1);
    expect(after.failed - before.failed).toBe(0);
    await file.close();
  });

  it('completes a read that NOWAIT served only in part (cached head, cold tail)', async () => {
    const path = join(scratch.dir, 'half.bin');
    const data = writeRandomFile(path, 1 << 20);
    dropFileCache(path);
    const file = await backend.open(path, 'r');
    // Warm the first 16 KiB only, then read 256 KiB from 0: NOWAIT copies the cached head.
    await file.read(Buffer.alloc(16384), 0);
    const buffer = Buffer.alloc(256 * 1024);
    expect(await file.read(buffer, 0)).toBe(buffer.length);
    expect(buffer.equals(data.subarray(0, buffer.length))).toBe(true);
    // At EOF the rest reads 0: a short count, as the contract says.
    const tail = Buffer.alloc(8192);
    expect(await file.read(tail, (1 << 20) - 4096)).toBe(4096);
    expect(tail.subarray(0, 4096).equals(data.subarray((1 << 20) - 4096))).toBe(true);
    await file.close();
  });

  it("bufferedReads: 'fallback' sends buffered reads straight to the fallback", async () => {
    const routed = await createIoSubmitBackend({ bufferedReads: 'fallback' });
    try {
      const path = join(scratch.dir, 'routed.bin');
      const data = writeRandomFile(path, 8192);
      const file = await routed.open(path, 'r');
      const buffer = Buffer.alloc(100);
      expect(await file.read(buffer, 50)).toBe(100);
      expect(buffer.equals(data.subarray(50, 150))).toBe(true);
      expect(routed.stats()).toMatchObject({ guardRouted: 1, nowaitFallbacks: 0 });
      expect(routed.stats().batchSize.count).toBe(0);
    } finally {
      await routed.close();
    }
  });
});
