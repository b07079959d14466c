import { readFileSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import type { AioRequest } from '@vmlink/aio';
import { withFile } from './basics.js';
import { collectGarbage, livenessMs, patternBytes } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

const MIB = 1 << 20;
/** Liveness limit for the heavy tests (tens of MiB generated and moved): 2 shared cores under load. */
const HEAVY_TIMEOUT_MS = 60_000;

/** Batches, many requests in flight, aborts and GC while requests are in flight. */
export function concurrencyTests(ctx: AioSuiteContext): void {
  it('submit: results in submission order, one failure does not fail the others', async () => {
    await withFile(ctx, 'batch', async (file) => {
      const a = patternBytes(4096, 1);
      const b = patternBytes(100, 2);
      const readBack = Buffer.alloc(4096);
      const closedPath = ctx.path('batch-closed');
      const closedFile = await ctx.backend().open(closedPath, 'w+');
      await closedFile.close();
      const requests: AioRequest[] = [
        { op: 'write', file, buffer: a, position: 0 },
        { op: 'read', file, buffer: 'not a buffer' as unknown as Buffer, position: 0 },
        { op: 'writev', file, buffers: [b, b], position: 4096n },
        { op: 'read', file: closedFile, buffer: Buffer.alloc(4), position: 0 },
        { op: 'fdatasync', file },
        { op: 'write', file, buffer: b, position: -5 },
        { op: 'fsync', file },
      ];
      const results = await ctx.backend().submit(requests);
      expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
      expect(results[0]).toEqual({ status: 'fulfilled', value: 4096 });
      expect(results[1]).toMatchObject({ reason: { code: 'ERR_INVALID_ARG_TYPE' } });
      expect(results[2]).toEqual({ status: 'fulfilled', value: 200 });
      expect(results[3]).toMatchObject({ reason: { code: 'EBADF' } });
      expect(results[5]).toMatchObject({ reason: { code: 'ERR_OUT_OF_RANGE' } });
      const [read] = await ctx.backend().submit([{ op: 'read', file, buffer: readBack, position: 0 }]);
      expect(read).toEqual({ status: 'fulfilled', value: 4096 });
      expect(readBack.equals(a)).toBe(true);
      expect(readFileSync(file.path).subarray(4096).equals(Buffer.concat([b, b]))).toBe(true);
    });
  });

  it('submit rejects a non-array with ERR_INVALID_ARG_TYPE', async () => {
    await expect(ctx.backend().submit('x' as unknown as AioRequest[])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('4x max-in-flight requests all settle while a timer keeps ticking', async () => {
    const count = 4 * (ctx.setup.maxInFlight ?? 32);
    await withFile(ctx, 'many', async (file) => {
      let ticks = 0;
      const timer = setInterval(() => (ticks += 1), 1);
      try {
        const chunk = 256 * 1024;
        const writes = Array.from({ length: count }, (_, i) => file.write(patternBytes(chunk, i), i * chunk));
        expect(await Promise.all(writes)).toEqual(Array(count).fill(chunk));
        await file.fdatasync();
        const buffers = Array.from({ length: count }, () => Buffer.alloc(chunk));
        const reads = buffers.map((buffer, i) => file.read(buffer, i * chunk));
        expect(await Promise.all(reads)).toEqual(Array(count).fill(chunk));
        buffers.forEach((buffer, i) => expect(buffer.equals(patternBytes(chunk, i)), `chunk ${i}`).toBe(true));
      } finally {
        clearInterval(timer);
      }
      // The event loop ran timers while the requests were in flight.
      expect(ticks).toBeGreaterThan(0);
      expect(ctx.backend().stats().inFlight).toBe(0);
    });
  }, livenessMs(ctx.setup, HEAVY_TIMEOUT_MS));

  it('a pre-aborted signal rejects with AbortError and does nothing', async () => {
    await withFile(ctx, 'abort-before', async (file) => {
      const controller = new AbortController();
      controller.abort(new Error('stop'));
      const { signal } = controller;
      const abortShape = { name: 'AbortError', code: 'ABORT_ERR' };
      await expect(file.write(Buffer.alloc(10, 1), 0, { signal })).rejects.toMatchObject(abortShape);
      await expect(file.read(Buffer.alloc(10), 0, { signal })).rejects.toMatchObject(abortShape);
      await expect(file.fsync({ signal })).rejects.toMatchObject(abortShape);
      const [result] = await ctx.backend().submit([{ op: 'write', file, buffer: Buffer.alloc(10, 1), position: 0, signal }]);
      expect(result).toMatchObject({ status: 'rejected', reason: abortShape });
      expect((await file.stat()).size).toBe(0);
    });
  });

  it('aborting during: queued requests are withdrawn where `cancel` is declared, started ones complete', async () => {
    const backend = ctx.backend();
    const path = ctx.path('abort-during');
    const data = patternBytes(MIB, 7);
    writeFileSync(path, data);
    const file = await backend.open(path, 'r');
    const chunk = 64 * 1024;
    /** One batch of reads aborted right after the hand-over; returns how many were withdrawn. */
    const attempt = async (): Promise<number> => {
      const controller = new AbortController();
      // More requests than any backend starts at once (an elastic pool may have 64 idle
      // workers from earlier tests).
      const buffers = Array.from({ length: 512 }, () => Buffer.alloc(chunk));
      const reads = buffers.map((buffer, i) => file.read(buffer, (i % 16) * chunk, { signal: controller.signal }));
      // Let the backend hand the batch over, then abort while most of it is still queued.
      await Promise.resolve();
      await Promise.resolve();
      controller.abort();
      const settled = await Promise.allSettled(reads);
      let aborted = 0;
      settled.forEach((result, i) => {
        if (result.status === 'fulfilled') {
          expect(result.value).toBe(chunk);
          const at = (i % 16) * chunk;
          expect(buffers[i]!.equals(data.subarray(at, at + chunk))).toBe(true);
        } else {
          expect(result.reason).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
          aborted += 1;
        }
      });
      expect(backend.stats().inFlight).toBe(0);
      return aborted;
    };
    try {
      // Workers that run while the loop thread is descheduled (2 shared cores under load)
      // can drain a whole batch before the abort reaches it: one of a few batches must
      // show a withdrawal; every batch must settle correctly.
      const tries = backend.capabilities.cancel ? 5 : 1;
      let withdrawn = 0;
      for (let i = 0; i < tries && withdrawn === 0; i++) withdrawn = await attempt();
      if (backend.capabilities.cancel) expect(withdrawn).toBeGreaterThan(0);
      const after = Buffer.alloc(16);
      await expect(file.read(after, 0)).resolves.toBe(16);
      expect(after.equals(data.subarray(0, 16))).toBe(true);
    } finally {
      await file.close();
    }
  }, livenessMs(ctx.setup, HEAVY_TIMEOUT_MS));

  it('buffers the caller dropped survive GC while their requests are in flight', async () => {
    await withFile(ctx, 'gc', async (file) => {
      const chunk = 64 * 1024;
      const count = 64;
      const writes: Promise<number>[] = [];
      // Each buffer is referenced only by the backend once the loop moves on.
      for (let i = 0; i < count; i++) writes.push(file.write(patternBytes(chunk, 1000 + i), i * chunk));
      for (let round = 0; round < 3; round++) {
        collectGarbage();
        // Churn memory so a freed buffer would be reused and overwritten.
        Array.from({ length: 64 }, () => Buffer.alloc(chunk, 0xee));
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(await Promise.all(writes)).toEqual(Array(count).fill(chunk));
      const contents = readFileSync(file.path);
      for (let i = 0; i < count; i++) {
        expect(contents.subarray(i * chunk, (i + 1) * chunk).equals(patternBytes(chunk, 1000 + i)), `chunk ${i}`).toBe(true);
      }
      const seen: Buffer[] = [];
      const reads = Array.from({ length: count }, (_, i) => {
        const buffer = Buffer.alloc(chunk);
        return file.read(buffer, i * chunk).then((n) => void (seen[i] = Buffer.from(buffer.subarray(0, n))));
      });
      collectGarbage();
      await Promise.all(reads);
      seen.forEach((bytes, i) => expect(bytes.equals(patternBytes(chunk, 1000 + i)), `read ${i}`).toBe(true));
    });
  });
}
