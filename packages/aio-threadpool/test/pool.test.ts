import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { createThreadPoolBackend, createThreadPoolIo, defaultThreadCount } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-threadpool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('thread pool options', () => {
  it('defaults to the number of cores, at least 2', () => {
    const io = createThreadPoolIo();
    expect(io.threads).toBe(defaultThreadCount());
    expect(io.threads).toBeGreaterThanOrEqual(2);
    return io.close();
  });

  it('rejects bad thread counts naming them', () => {
    expect(() => createThreadPoolBackend({ threads: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('0') }));
    expect(() => createThreadPoolBackend({ threads: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => createThreadPoolBackend({ threads: '4' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => createThreadPoolBackend(7 as unknown as object)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('thread pool batching and stats', () => {
  it('requests made in one tick reach the workers in one batch; stats fill every histogram', async () => {
    const path = join(dir, 'batch');
    writeFileSync(path, Buffer.alloc(64 * 4096, 3));
    const backend = createThreadPoolBackend({ threads: 2 });
    try {
      const file = await backend.open(path, 'r');
      const reads = Array.from({ length: 64 }, (_, i) => file.read(Buffer.alloc(4096), i * 4096));
      expect(await Promise.all(reads)).toEqual(Array(64).fill(4096));
      const stats = backend.stats();
      expect(stats.batchSize.max).toBe(64);
      expect(stats.submitTimeUs.count).toBe(stats.batchSize.count);
      expect(stats.queueWaitUs.count).toBe(64);
      expect(stats.serviceTimeUs.count).toBe(64);
      expect(stats).toMatchObject({ submitted: 64, completed: 64, failed: 0, inFlight: 0 });
    } finally {
      await backend.close();
    }
  });
});

describe('ThreadPoolIo as an FdIo on raw fds', () => {
  it('reads, writes, syncs a caller-owned fd and reports errno-named errors', async () => {
    const path = join(dir, 'raw');
    writeFileSync(path, '');
    const fd = openSync(path, 'r+');
    const io = createThreadPoolIo({ threads: 2 });
    try {
      await expect(io.writev(fd, [Buffer.from('abc'), Buffer.from('def')], 10n)).resolves.toBe(6);
      await io.fdatasync(fd);
      await io.fsync(fd);
      const out = Buffer.alloc(6);
      await expect(io.readv(fd, [out], 10)).resolves.toBe(6);
      expect(out.toString()).toBe('abcdef');
      expect(readFileSync(path).subarray(10).toString()).toBe('abcdef');
      const readOnly = openSync(path, 'r');
      await expect(io.writev(readOnly, [Buffer.from('x')], 0)).rejects.toMatchObject({ code: 'EBADF', errno: -9, syscall: 'pwritev2' });
      closeSync(readOnly);
      await expect(io.readv(fd, [Buffer.alloc(1)], -3)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(io.readv(-1, [Buffer.alloc(1)], 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(io.readv('3' as unknown as number, [Buffer.alloc(1)], 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    } finally {
      await io.close();
      closeSync(fd);
    }
    await expect(io.readv(fd, [Buffer.alloc(1)], 0)).rejects.toMatchObject({ code: 'EBADF' });
  });

  it('transferChecked (what an FdFile calls) moves the bytes and ends through settle, errors and a closed pool included', async () => {
    const path = join(dir, 'checked');
    writeFileSync(path, Buffer.alloc(8192, 4));
    const fd = openSync(path, 'r+');
    const io = createThreadPoolIo({ threads: 2 });
    const run = (isRead: boolean, target: number, buffers: Buffer[], position: number): Promise<number> =>
      new Promise((resolve, reject) => io.transferChecked(isRead, target, buffers, position, undefined, { resolve, reject }));
    try {
      await expect(run(false, fd, [Buffer.alloc(4096, 8)], 4096)).resolves.toBe(4096);
      const halves = [Buffer.alloc(2048), Buffer.alloc(2048)];
      await expect(run(true, fd, halves, 4096)).resolves.toBe(4096);
      expect(Buffer.concat(halves).every((byte) => byte === 8)).toBe(true);
      const readOnly = openSync(path, 'r');
      await expect(run(false, readOnly, [Buffer.from('x')], 0)).rejects.toMatchObject({ code: 'EBADF', syscall: 'pwritev2' });
      closeSync(readOnly);
    } finally {
      await io.close();
    }
    // After close: a rejection through settle, not a throw into the caller.
    await expect(run(true, fd, [Buffer.alloc(1)], 0)).rejects.toMatchObject({ code: 'EBADF' });
    closeSync(fd);
  });

  it('close() waits for requests in flight', async () => {
    const path = join(dir, 'close-wait');
    writeFileSync(path, Buffer.alloc(1 << 20, 9));
    const fd = openSync(path, 'r');
    const io = createThreadPoolIo({ threads: 2 });
    const reads = Array.from({ length: 16 }, () => io.readv(fd, [Buffer.alloc(1 << 20)], 0));
    await io.close();
    expect(await Promise.all(reads)).toEqual(Array(16).fill(1 << 20));
    closeSync(fd);
  });

  it('a worker_thread terminated with requests in flight tears its pool down cleanly', async () => {
    const path = join(dir, 'worker');
    writeFileSync(path, Buffer.alloc(1 << 20, 1));
    const source = `
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(join(process.cwd(), 'packages/aio-threadpool/dist/index.js'))}).then(async ({ createThreadPoolBackend }) => {
        const backend = createThreadPoolBackend({ threads: 2 });
        const file = await backend.open(${JSON.stringify(path)}, 'r');
        for (let i = 0; i < 64; i++) file.read(Buffer.alloc(1 << 20), 0);
        parentPort.postMessage('busy');
      });
    `;
    const worker = new Worker(source, { eval: true });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    await expect(worker.terminate()).resolves.toBe(1);
  });
});

describe('readvCacheFirst (real file, real page cache)', () => {
  /** A synced file of random bytes, so its pages are clean and can be dropped from the cache. */
  function syncedFile(name: string, size: number): { path: string; data: Buffer } {
    const path = join(dir, name);
    const data = randomBytes(size);
    const fd = openSync(path, 'w');
    writeSync(fd, data);
    fdatasyncSync(fd);
    closeSync(fd);
    return { path, data };
  }
  const dropCache = (path: string): void => {
    execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
  };

  it('says the cache served a warm read, and not a cold one; both bring the right bytes', async () => {
    const { path, data } = syncedFile('cache-first', 8 << 20);
    const fd = openSync(path, 'r');
    const io = createThreadPoolIo({ threads: 2 });
    try {
      readFileSync(path); // warm
      const warm = Buffer.alloc(4096);
      // "Cached" also means "within a copy's time": a worker preempted in the middle of one
      // copy could miss that, so one of a few reads must say so (all bring the right bytes).
      const warmReads = [];
      for (let i = 0; i < 4; i++) {
        warmReads.push(await io.readvCacheFirst(fd, [warm], 4096));
        expect(warm.equals(data.subarray(4096, 8192))).toBe(true);
      }
      expect(warmReads.every((read) => read.bytes === 4096)).toBe(true);
      expect(warmReads.some((read) => read.cached)).toBe(true);

      dropCache(path);
      const cold = [Buffer.alloc(1000), Buffer.alloc(3096)];
      const offset = 6 << 20;
      expect(await io.readvCacheFirst(fd, cold, offset)).toEqual({ bytes: 4096, cached: false });
      expect(Buffer.concat(cold).equals(data.subarray(offset, offset + 4096))).toBe(true);

      // End of file: nothing to read, nothing to wait for.
      expect(await io.readvCacheFirst(fd, [Buffer.alloc(16)], 8 << 20)).toEqual({ bytes: 0, cached: true });
    } finally {
      await io.close();
      closeSync(fd);
    }
  });

  it('refuses bad input like readv, and EBADF comes back as a system error', async () => {
    const io = createThreadPoolIo({ threads: 2 });
    try {
      await expect(io.readvCacheFirst(0, ['x' as unknown as Uint8Array], 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      await expect(io.readvCacheFirst(0, [Buffer.alloc(1)], -1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(io.readvCacheFirst(1 << 20, [Buffer.alloc(1)], 0)).rejects.toMatchObject({ code: 'EBADF', syscall: 'preadv2' });
    } finally {
      await io.close();
    }
  });
});
