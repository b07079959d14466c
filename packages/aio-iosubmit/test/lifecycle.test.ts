import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allocAligned, createBackend, createFsFdIo, O_DIRECT, type FdIo } from '@vmlink/aio';
import { afterAll, describe, expect, it } from 'vitest';
import { createIoSubmitBackend, IoSubmitBackend } from '../src/index.js';
import { aioContextMappings, openFds, scratchDir, writeRandomFile } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

describe('io_submit backend lifecycle', () => {
  it('leaves no fd (files, eventfd, buffered twins) and no AIO context after close', async () => {
    const path = join(scratch.dir, 'leak.bin');
    writeRandomFile(path, 64 * 1024);
    const fdsBefore = openFds();
    const contextsBefore = aioContextMappings();
    const backend = await createIoSubmitBackend();
    expect(aioContextMappings()).toBe(contextsBefore + 1);
    const direct = await backend.open(path, constants.O_RDWR | O_DIRECT);
    const buffered = await backend.open(path, 'r');
    await Promise.all([
      direct.read(allocAligned(4096), 0),
      direct.read(Buffer.alloc(10), 5), // misaligned: opens the buffered twin
      buffered.read(Buffer.alloc(10), 0),
      direct.fsync(),
    ]);
    await backend.close();
    expect(backend.eventFd).toBe(-1);
    expect(aioContextMappings()).toBe(contextsBefore);
    expect(openFds()).toEqual(fdsBefore);
    await expect(direct.read(allocAligned(4096), 0)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(backend.open(path)).rejects.toMatchObject({ code: 'EBADF' });
  });

  it('close waits for requests in flight, which settle with their real results', async () => {
    const path = join(scratch.dir, 'inflight.bin');
    const data = writeRandomFile(path, 1 << 20);
    const backend = await createIoSubmitBackend();
    const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
    const buffers = Array.from({ length: 64 }, () => allocAligned(16384));
    const reads = buffers.map((buffer, i) => file.read(buffer, i * 16384));
    const closing = backend.close();
    expect(await Promise.all(reads)).toEqual(buffers.map(() => 16384));
    await closing;
    expect(buffers.every((buffer, i) => buffer.equals(data.subarray(i * 16384, (i + 1) * 16384)))).toBe(true);
  });

  it('queues beyond maxInFlight and submits at most 32 iocbs per io_submit call', async () => {
    const path = join(scratch.dir, 'queue.bin');
    const data = writeRandomFile(path, 1 << 20);
    const backend = await createIoSubmitBackend({ maxInFlight: 40 });
    try {
      const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      const buffers = Array.from({ length: 200 }, () => allocAligned(4096));
      const results = await Promise.all(buffers.map((buffer, i) => file.read(buffer, (i % 256) * 4096)));
      expect(results.every((n) => n === 4096)).toBe(true);
      expect(buffers.every((buffer, i) => buffer.equals(data.subarray((i % 256) * 4096, (i % 256 + 1) * 4096)))).toBe(true);
      const stats = backend.stats();
      expect(stats.batchSize.max).toBeLessThanOrEqual(32);
      expect(stats.submitted).toBe(200);
      expect(stats.completed).toBe(200);
      expect(stats.inFlight).toBe(0);
      expect(stats.submitTimeUs.count).toBe(stats.batchSize.count);
    } finally {
      await backend.close();
    }
  });

  it('withdraws a queued request when its signal aborts; a pre-aborted one never starts', async () => {
    const path = join(scratch.dir, 'abort.bin');
    writeRandomFile(path, 8192);
    // A threshold above the request count keeps everything queued until the end of the tick.
    const backend = await createIoSubmitBackend({ submitThreshold: 64 });
    try {
      const file = await backend.open(path, 'r');
      const controller = new AbortController();
      const reading = file.read(Buffer.alloc(10), 0, { signal: controller.signal });
      controller.abort(); // same tick: still queued in JS
      await expect(reading).rejects.toMatchObject({ name: 'AbortError' });
      await expect(file.read(Buffer.alloc(10), 0, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
      // Many queued requests on one signal (one listener for all of them) are all withdrawn.
      const shared = new AbortController();
      const many = Array.from({ length: 20 }, () => file.read(Buffer.alloc(10), 0, { signal: shared.signal }));
      shared.abort();
      const settled = await Promise.allSettled(many);
      expect(settled.every((r) => r.status === 'rejected' && (r.reason as Error).name === 'AbortError')).toBe(true);
      expect(backend.stats().batchSize.count).toBe(0);
      expect(await file.read(Buffer.alloc(10), 0)).toBe(10);
    } finally {
      await backend.close();
    }
  });

  it('submits at once when submitThreshold requests are queued; only the rest can be withdrawn', async () => {
    const path = join(scratch.dir, 'threshold.bin');
    const data = writeRandomFile(path, 8192);
    const backend = await createIoSubmitBackend({ submitThreshold: 4, bufferedReads: 'nowait' });
    try {
      const file = await backend.open(path, 'r');
      const controller = new AbortController();
      const buffers = Array.from({ length: 6 }, () => Buffer.alloc(16));
      const reads = buffers.map((buffer) => file.read(buffer, 0, { signal: controller.signal }));
      controller.abort();
      const settled = await Promise.allSettled(reads);
      // The first 4 went to the kernel when the 4th was queued and complete for real.
      expect(settled.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
      expect(buffers.slice(0, 4).every((buffer) => buffer.equals(data.subarray(0, 16)))).toBe(true);
      expect(backend.stats().batchSize).toMatchObject({ count: 1, max: 4 });
    } finally {
      await backend.close();
    }
  });

  it('submits O_DIRECT requests at once at directSubmitThreshold, buffered ones at submitThreshold', async () => {
    const path = join(scratch.dir, 'direct-threshold.bin');
    const data = writeRandomFile(path, 64 * 1024);
    const backend = await createIoSubmitBackend({ submitThreshold: 64, directSubmitThreshold: 2, bufferedReads: 'nowait' });
    try {
      const direct = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      const buffered = await backend.open(path, 'r');
      const controller = new AbortController();
      const signal = controller.signal;
      const directBuffers = Array.from({ length: 3 }, () => allocAligned(4096));
      // Two buffered reads, then three direct ones (not contiguous: each its own run): the
      // second direct read reaches the direct threshold and submits all four queued so
      // far; the fifth stays queued.
      const reads = [
        buffered.read(Buffer.alloc(16), 0, { signal }),
        buffered.read(Buffer.alloc(16), 0, { signal }),
        ...directBuffers.map((buffer, i) => direct.read(buffer, i * 8192, { signal })),
      ];
      controller.abort();
      const settled = await Promise.allSettled(reads);
      expect(settled.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
      expect(directBuffers[1]?.equals(data.subarray(8192, 12288))).toBe(true);
      expect(backend.stats().batchSize).toMatchObject({ count: 1, max: 4 });
      await direct.close();
      await buffered.close();
    } finally {
      await backend.close();
    }
  });

  it('contiguous O_DIRECT reads are one run: they go together at the end of the tick, past directSubmitThreshold, and read right', async () => {
    const path = join(scratch.dir, 'direct-run.bin');
    const data = writeRandomFile(path, 256 * 1024);
    const backend = await createIoSubmitBackend({ submitThreshold: 4, directSubmitThreshold: 2 });
    try {
      const direct = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      // 16 reads, each starting where the last one ends: one run (the block layer merges
      // it into one device request when it goes in one call).
      const buffers = Array.from({ length: 16 }, () => allocAligned(16384));
      expect(await Promise.all(buffers.map((buffer, i) => direct.read(buffer, i * 16384)))).toEqual(Array(16).fill(16384));
      expect(Buffer.concat(buffers).equals(data)).toBe(true);
      expect(backend.stats().batchSize).toMatchObject({ count: 1, max: 16 });
      // A gap starts a new run: two runs of 4 here, so the threshold of 2 submits at the second.
      const before = backend.stats().batchSize.count;
      const gapped = buffers.slice(0, 8).map((buffer, i) => direct.read(buffer, (i < 4 ? i : i + 1) * 16384));
      await Promise.all(gapped);
      const after = backend.stats().batchSize;
      expect(after.count - before).toBe(2);
      await direct.close();
    } finally {
      await backend.close();
    }
  });

  it('requests held for a completion go in one call with those its continuations make (a convoy, as fio batches)', async () => {
    const path = join(scratch.dir, 'convoy.bin');
    writeRandomFile(path, 256 * 1024);
    // Hold O_DIRECT requests while 2 are in the kernel; no early submits otherwise.
    const backend = await createIoSubmitBackend({ submitThreshold: 100, directSubmitThreshold: 100, directBatch: 2 });
    try {
      const direct = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      const buffer = (): Buffer => allocAligned(4096);
      // A and B go in one call; C, made a tick later, waits for a completion (2 in the
      // kernel); the first of A and B to complete makes D in its continuation (whichever
      // the disk finishes first). Every offset stands apart: no runs.
      let d: Promise<number> | undefined;
      const continueOnce = (n: number): number => {
        d ??= direct.read(buffer(), 192 * 1024);
        return n;
      };
      const a = direct.read(buffer(), 0).then(continueOnce);
      const b = direct.read(buffer(), 64 * 1024).then(continueOnce);
      await new Promise((resolve) => setImmediate(resolve));
      const c = direct.read(buffer(), 128 * 1024);
      expect(await Promise.all([a, b, c])).toEqual([4096, 4096, 4096]);
      expect(await d).toBe(4096);
      // C and D rode together: 2 calls of 2, not C alone and then D alone.
      expect(backend.stats().batchSize).toMatchObject({ count: 2, max: 2 });
      await direct.close();
    } finally {
      await backend.close();
    }
  });

  it('io_setup EAGAIN says which limit to raise', async () => {
    const max = Number((await import('node:fs')).readFileSync('/proc/sys/fs/aio-max-nr', 'utf8'));
    await expect(createIoSubmitBackend({ maxInFlight: max + 1 })).rejects.toMatchObject({
      code: 'EAGAIN',
      syscall: 'io_setup',
      message: expect.stringContaining('raise /proc/sys/fs/aio-max-nr'),
    });
  });

  it('rejects bad options with coded errors naming them', async () => {
    await expect(createIoSubmitBackend({ maxInFlight: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.maxInFlight') });
    await expect(createIoSubmitBackend({ strict: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(createIoSubmitBackend({ fallback: {} as FdIo })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.fallback') });
    await expect(createIoSubmitBackend({ bufferedReads: 'sometimes' as 'adaptive' })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(createIoSubmitBackend({ submitThreshold: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.submitThreshold') });
    await expect(createIoSubmitBackend({ directSubmitThreshold: 1.5 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.directSubmitThreshold') });
  });

  it('falls back to the dedicated thread pool by default, or to the FdIo it is given', async () => {
    const path = join(scratch.dir, 'fallback.bin');
    const data = writeRandomFile(path, 8192);
    const pooled = await createIoSubmitBackend();
    expect(pooled.fallback?.name).toBe('threadpool');
    await pooled.close();
    const given = createFsFdIo();
    const backend = await createIoSubmitBackend({ fallback: given });
    try {
      expect(backend.fallback).toBe(given);
      const file = await backend.open(path, 'r+');
      const buffer = Buffer.alloc(16);
      await file.write(Buffer.from('x'), 0); // buffered write: routed to `given`
      expect(given.recorder.snapshot().completed).toBe(1);
      expect(await file.read(buffer, 1)).toBe(16);
      expect(buffer.equals(data.subarray(1, 17))).toBe(true);
    } finally {
      await backend.close();
    }
  });

  it("is what @vmlink/aio's createBackend('iosubmit') returns", async () => {
    const backend = await createBackend('iosubmit', { strict: true });
    try {
      expect(backend.name).toBe('iosubmit');
      expect(backend.capabilities.misalignedDirect).toBe('reject');
    } finally {
      await backend.close();
    }
    expect(IoSubmitBackend).toBeTypeOf('function');
  });

  it('a process that used the backend and did not close it exits when idle', () => {
    const path = join(scratch.dir, 'exit.bin');
    writeRandomFile(path, 64 * 1024);
    const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const script = `
      const { createIoSubmitBackend } = await import(${JSON.stringify(entry)});
      const backend = await createIoSubmitBackend();
      const file = await backend.open(${JSON.stringify(path)}, 'r');
      const n = await file.read(Buffer.alloc(4096), 0);
      console.log('read', n);
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.error).toBeUndefined();
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('read 4096');
    expect(child.status).toBe(0);
  });
});
