import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allocAligned, createBackend, O_DIRECT, type AioBackend, type AioFile } from '@vmlink/aio';
import { probeDirect, runChild } from '@vmlink/compliance/aio';
import { createThreadPoolBackend, createThreadPoolIo } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-threadpool-elastic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DEPTH = 32;

/** Polls what a worker thread changes on its own (no event reaches JS when a worker exits). */
async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `rounds` rounds of DEPTH reads in flight at once, at spread offsets; checks every byte count. */
async function readRounds(file: AioFile, rounds: number, size: number, fileSize: number, direct: boolean): Promise<void> {
  const buffers = Array.from({ length: DEPTH }, () => (direct ? allocAligned(size, file.alignment.memory) : Buffer.alloc(size)));
  const slots = fileSize / size;
  for (let round = 0; round < rounds; round++) {
    const reads = buffers.map((buffer, i) => file.read(buffer, ((round * DEPTH + i) * 7919 % slots) * size));
    expect(await Promise.all(reads)).toEqual(Array(DEPTH).fill(size));
  }
}

function threadsOf(backend: AioBackend): NonNullable<ReturnType<AioBackend['stats']>['threads']> {
  const threads = backend.stats().threads;
  if (threads === undefined) throw new Error('the thread pool reports no threads in stats()');
  return threads;
}

describe('elastic thread pool (real files)', () => {
  it('depth 32 of O_DIRECT reads (disk I/O) grows the pool past minThreads; idle, it shrinks back', async (test) => {
    const reason = probeDirect(dir);
    if (reason !== undefined) test.skip(reason);
    const path = join(dir, 'direct');
    const fileSize = 16 << 20;
    writeFileSync(path, Buffer.alloc(fileSize, 1));
    const backend = createThreadPoolBackend({ minThreads: 2, maxThreads: 16, idleTimeoutMs: 300 });
    try {
      expect(threadsOf(backend)).toMatchObject({ current: 2, peak: 2, min: 2, max: 16 });
      const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      await readRounds(file, 20, 4096, fileSize, true);
      const grown = threadsOf(backend);
      expect(grown.peak).toBeGreaterThan(2);
      expect(grown.peak).toBeLessThanOrEqual(16);
      await until(() => threadsOf(backend).current === 2, 'idle workers to exit');
      expect(threadsOf(backend)).toMatchObject({ current: 2, min: 2 });
      await file.close();
    } finally {
      await backend.close();
    }
  }, 60_000);

  it('requests that count as blocking grow the pool to maxThreads at most, and never below the queue', async () => {
    const path = join(dir, 'all-slow');
    const fileSize = 32 << 20;
    writeFileSync(path, Buffer.alloc(fileSize, 2));
    // A copy budget no request meets: every completion counts as slow, so growth is certain.
    const backend = createThreadPoolBackend({ minThreads: 1, maxThreads: 6, cachedBaseUs: 0, cachedBytesPerUs: 1e9, idleTimeoutMs: 200 });
    try {
      const file = await backend.open(path, 'r');
      // 1 MiB copies: one worker cannot drain a round before the loop thread looks again.
      await readRounds(file, 10, 1 << 20, fileSize, false);
      expect(threadsOf(backend).peak).toBe(6);
      await until(() => threadsOf(backend).current === 1, 'idle workers to exit');
      await file.close();
    } finally {
      await backend.close();
    }
  }, 60_000);

  it('the workers-per-request ceiling rises from the workers\' own workerSlept flags while requests queue (real workers)', async () => {
    const path = join(dir, 'ceiling');
    const size = 1 << 20;
    const fileSize = 32 << 20;
    writeFileSync(path, Buffer.alloc(fileSize, 4));
    // Every completion counts as I/O (a copy budget none meets), the rise is open to any
    // window with one request that found work queued, and a rise stays however fast the next
    // window is (copies on 2 cores need not get faster): the wiring is under test, not the numbers.
    const io = createThreadPoolIo({
      minThreads: 1,
      maxThreads: 16,
      threadsPerInFlight: 0.25,
      riseWhenSleptShareBelow: 1,
      riseWhenLoopBusyBelow: 1,
      keepRiseWhenFasterBy: -1,
      cachedBaseUs: 0,
      cachedBytesPerUs: 1e9,
      cachedReadsOnLoop: false,
    });
    const fd = openSync(path, 'r');
    try {
      expect(io.threadsPerInFlight).toBe(0.25);
      expect(io.threadStats().perInFlight).toBe(0.25);
      const deadline = Date.now() + 30_000;
      let reads = 0;
      // 16 closed loops of 1 MiB copies: the queue stays long enough for workers to find work.
      const loop = async (): Promise<void> => {
        const buffer = Buffer.alloc(size);
        while (io.threadsPerInFlight < 0.5 && Date.now() < deadline) {
          expect(await io.readv(fd, [buffer], ((reads++ * 7919) % (fileSize / size)) * size)).toBe(size);
        }
      };
      await Promise.all(Array.from({ length: 16 }, loop));
      expect(io.threadsPerInFlight).toBeGreaterThanOrEqual(0.5);
      expect(io.threadStats().peak).toBeGreaterThan(4); // 16 x 0.25 at first
      expect(io.threadStats().perInFlight).toBe(io.threadsPerInFlight);
    } finally {
      closeSync(fd);
      await io.close();
    }
  }, 60_000);

  it('page-cache hits (judged fast) never grow the pool past minThreads', async () => {
    const path = join(dir, 'warm');
    const fileSize = 4 << 20;
    writeFileSync(path, Buffer.alloc(fileSize, 3));
    // A copy budget every request meets, preempted or not: the decision, not the clock, is under test.
    const backend = createThreadPoolBackend({ minThreads: 2, maxThreads: 64, cachedBaseUs: 1e6 });
    try {
      const file = await backend.open(path, 'r');
      await readRounds(file, 50, 4096, fileSize, false);
      expect(threadsOf(backend)).toMatchObject({ current: 2, peak: 2 });
      await file.close();
    } finally {
      await backend.close();
    }
  }, 60_000);

  it('minThreads 0: the first request gets a worker, which leaves when idle', async () => {
    const path = join(dir, 'zero');
    writeFileSync(path, 'hello');
    const io = createThreadPoolIo({ minThreads: 0, maxThreads: 2, idleTimeoutMs: 50 });
    const backend = createThreadPoolBackend({ minThreads: 0, maxThreads: 2, idleTimeoutMs: 50 });
    try {
      expect(io.threads).toBe(0);
      const file = await backend.open(path, 'r');
      const out = Buffer.alloc(5);
      await expect(file.read(out, 0)).resolves.toBe(5);
      expect(out.toString()).toBe('hello');
      expect(threadsOf(backend).peak).toBe(1);
      await until(() => threadsOf(backend).current === 0, 'the worker to exit');
      await expect(file.read(out, 0)).resolves.toBe(5);
      await file.close();
    } finally {
      await io.close();
      await backend.close();
    }
  }, 60_000);

  it('a process whose grown pool sits idle (backend never closed) exits on its own', async () => {
    const path = join(dir, 'child');
    writeFileSync(path, Buffer.alloc(8 << 20, 4));
    const source = `
      const { createThreadPoolBackend } = await import('@vmlink/aio-threadpool');
      const backend = createThreadPoolBackend({ minThreads: 1, maxThreads: 8, cachedBaseUs: 0, cachedBytesPerUs: 1e9, idleTimeoutMs: 60000 });
      const file = await backend.open(${JSON.stringify(path)}, 'r');
      for (let round = 0; round < 10; round++) {
        await Promise.all(Array.from({ length: 8 }, (_, i) => file.read(Buffer.alloc(1 << 20), i << 20)));
      }
      console.log(JSON.stringify(backend.stats().threads));
    `;
    const result = await runChild(source, 30_000);
    expect(result.killed, `the child did not exit by itself\n${result.stderr}`).toBe(false);
    expect(result.code, result.stderr).toBe(0);
    const threads = JSON.parse(result.stdout) as { current: number; peak: number };
    expect(threads.peak).toBeGreaterThan(1);
  }, 60_000);

  it("createBackend('threadpool', { minThreads, maxThreads, idleTimeoutMs }) passes them on; bad ones are typed errors", async () => {
    const backend = await createBackend('threadpool', { minThreads: 1, maxThreads: 3, idleTimeoutMs: 1000, threadsPerInFlight: 0.5, strict: true });
    try {
      expect(backend.stats().threads).toMatchObject({ current: 1, min: 1, max: 3, perInFlight: 0.5 });
    } finally {
      await backend.close();
    }
    await expect(createBackend('threadpool', { minThreads: 4, maxThreads: 2 })).rejects.toMatchObject({
      code: 'ERR_OUT_OF_RANGE',
      message: expect.stringContaining('options.minThreads'),
    });
    await expect(createBackend('threadpool', { maxThreads: 1000 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('1000') });
    await expect(createBackend('threadpool', { idleTimeoutMs: 'soon' as unknown as number })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('idleTimeoutMs') });
  });
});

/** `rounds` rounds of `depth` writes of `size` bytes in flight to `file`, at distinct offsets; checks every byte count. */
async function writeRounds(file: AioFile, rounds: number, depth: number, size: number, direct: boolean): Promise<void> {
  const buffers = Array.from({ length: depth }, (_, i) => {
    const buffer = direct ? allocAligned(size, file.alignment.memory) : Buffer.alloc(size);
    buffer.fill(i + 1);
    return buffer;
  });
  for (let round = 0; round < rounds; round++) {
    expect(await Promise.all(buffers.map((buffer, i) => file.write(buffer, i * size)))).toEqual(Array(depth).fill(size));
  }
}

// One file's buffered writes run one at a time in the kernel (its inode lock), so the pool
// does not grow a worker for each (serial-writes.ts). Growth is made certain as above: a copy
// budget no request meets counts every completion as slow.
describe('buffered writes to one file grow the pool only to bufferedWritesPerFile (real files)', () => {
  const certain = { minThreads: 1, maxThreads: 8, threadsPerInFlight: 1, cachedBaseUs: 0, cachedBytesPerUs: 1e9, idleTimeoutMs: 60_000 };

  async function peakOf(options: Record<string, unknown>, files: readonly { name: string; flags: number; direct: boolean }[], depth: number): Promise<number> {
    const backend = createThreadPoolBackend(options);
    try {
      const opened = await Promise.all(files.map(({ name, flags }) => backend.open(join(dir, name), flags)));
      await Promise.all(opened.map((file, i) => writeRounds(file, 10, depth, 256 << 10, files[i]!.direct)));
      await Promise.all(opened.map((file) => file.close()));
      return threadsOf(backend).peak;
    } finally {
      await backend.close();
    }
  }

  const create = constants.O_RDWR | constants.O_CREAT;

  it('32 writes in flight to one buffered file: 2 workers at most (the default); with bufferedWritesPerFile 32 it grows to maxThreads', async () => {
    expect(await peakOf(certain, [{ name: 'serial', flags: create, direct: false }], 32)).toBeLessThanOrEqual(2);
    // The control: the same load with the allowance lifted grows, so the bound above is the policy's.
    expect(await peakOf({ ...certain, bufferedWritesPerFile: 32 }, [{ name: 'serial', flags: create, direct: false }], 32)).toBe(8);
  }, 60_000);

  it('two buffered files: an allowance each (more than one file allows, never more than both)', async () => {
    const peak = await peakOf(certain, [{ name: 'serial-a', flags: create, direct: false }, { name: 'serial-b', flags: create, direct: false }], 16);
    expect(peak).toBeGreaterThan(2);
    expect(peak).toBeLessThanOrEqual(4);
  }, 60_000);

  it('O_DIRECT writes (the hand-over reports the fd so) still grow the pool past the allowance', async (test) => {
    const reason = probeDirect(dir);
    if (reason !== undefined) test.skip(reason);
    expect(await peakOf(certain, [{ name: 'direct-writes', flags: create | O_DIRECT, direct: true }], 32)).toBeGreaterThan(2);
  }, 60_000);

  it('bufferedWritesPerFile: 0 or a string is a typed error naming it', async () => {
    await expect(createBackend('threadpool', { bufferedWritesPerFile: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.bufferedWritesPerFile') });
    await expect(createBackend('threadpool', { bufferedWritesPerFile: 'two' as unknown as number })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_TYPE',
      message: expect.stringContaining('options.bufferedWritesPerFile'),
    });
  });
});
