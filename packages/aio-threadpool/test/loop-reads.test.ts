import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allocAligned } from '@vmlink/aio';
import { createThreadPoolBackend, createThreadPoolIo, type ThreadPoolOptions } from '../src/index.js';

// Real files, real page cache: which reads the pool serves on the loop thread
// (preadv2 RWF_NOWAIT, cachedReadsOnLoop) and which it leaves to its workers.
const dir = mkdtempSync(join(tmpdir(), 'vmlink-loop-reads-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * These tests claim the cache-state logic (EAGAIN, O_DIRECT, the meter, the budget), not
 * timings: a read counts as a miss when slower than a copy, and in a loaded `npm test` a
 * preempted copy is that slow (a window of such cools a warm file). Which reads count as
 * slow is policy.test.ts's (withinCopyTime); here no read is too slow.
 */
const TIME_BLIND = { cachedBaseUs: 1e6 } as const;

const BLOCK = 4096;
const BLOCKS = 256; // 1 MiB

function writeRandomFile(name: string): { path: string; data: Buffer } {
  const path = join(dir, name);
  const data = randomBytes(BLOCK * BLOCKS);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, data, 0, data.length, 0);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { path, data };
}

/** Drops the file's pages from the page cache (dd's nocache uses posix_fadvise DONTNEED). */
function dropFileCache(path: string): void {
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** `count` 4 KiB reads at `depth` in flight, cycling over the file; checks every byte. */
async function readAround(io: ReturnType<typeof createThreadPoolIo>, fd: number, data: Buffer, count: number, depth = 32, newBuffer: () => Buffer = () => Buffer.alloc(BLOCK)): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const block = next++ % BLOCKS;
      const buffer = newBuffer();
      const bytes = await io.readv(fd, [buffer], block * BLOCK);
      expect(bytes).toBe(BLOCK);
      if (!buffer.equals(data.subarray(block * BLOCK, (block + 1) * BLOCK))) throw new Error(`block ${block} read wrong bytes`);
    }
  };
  await Promise.all(Array.from({ length: depth }, lane));
}

async function withIo(options: ThreadPoolOptions, body: (io: ReturnType<typeof createThreadPoolIo>) => Promise<void>): Promise<void> {
  const io = createThreadPoolIo(options);
  try {
    await body(io);
  } finally {
    await io.close();
  }
}

/** A fresh 1 MiB file with every page cached, open for reading while `body` runs on a new pool. */
async function withWarmFile(name: string, options: ThreadPoolOptions, body: (io: ReturnType<typeof createThreadPoolIo>, fd: number, data: Buffer, path: string) => Promise<void>): Promise<void> {
  const { path, data } = writeRandomFile(name);
  readFileSync(path);
  const fd = openSync(path, 'r');
  try {
    await withIo(options, (io) => body(io, fd, data, path));
  } finally {
    closeSync(fd);
  }
}

describe('reads on the loop thread (cachedReadsOnLoop, real page cache)', () => {
  it('a warm file moves to the loop after a window of cache hits on the workers, with the right bytes', async () => {
    await withWarmFile('warm', TIME_BLIND, async (io, fd, data) => {
      await readAround(io, fd, data, 32);
      expect(io.readsOnLoop).toBe(0); // a file starts on the workers, however warm
      await readAround(io, fd, data, 3000);
      expect(io.readsOnLoop).toBeGreaterThan(1000);
    });
  });

  it('a cold file is read by the workers: none of its first reads run on the loop', async () => {
    const { path, data } = writeRandomFile('cold');
    dropFileCache(path);
    const fd = openSync(path, 'r');
    await withIo({}, async (io) => {
      await readAround(io, fd, data, BLOCKS);
      expect(io.readsOnLoop).toBe(0);
    }).finally(() => closeSync(fd));
  });

  it('a warm file that goes cold goes back to the workers after missesToCool misses in a window', async () => {
    await withWarmFile('cooling', { ...TIME_BLIND, coldReads: { window: 8, missesToCool: 2, firstPause: 64, maxPause: 64 } }, async (io, fd, data, path) => {
      await readAround(io, fd, data, 1000, 1);
      expect(io.readsOnLoop).toBeGreaterThan(500);
      const [served, missed] = [io.readsOnLoop, io.loopReadMisses];
      // Every read now finds its page evicted: on the loop each would be an EAGAIN (and
      // readahead started on the loop thread). The first window's misses cool the file;
      // the rest of the 64 reads go to the workers without trying the loop.
      for (let block = 0; block < 64; block++) {
        dropFileCache(path);
        const buffer = Buffer.alloc(BLOCK);
        expect(await io.readv(fd, [buffer], block * BLOCK)).toBe(BLOCK);
        expect(buffer.equals(data.subarray(block * BLOCK, (block + 1) * BLOCK))).toBe(true);
      }
      expect(io.loopReadMisses - missed).toBeGreaterThanOrEqual(2);
      expect(io.loopReadMisses - missed + (io.readsOnLoop - served)).toBeLessThanOrEqual(8);
    });
  });

  it('never reads an O_DIRECT fd on the loop (NOWAIT would still wait for the disk there)', async () => {
    const { path, data } = writeRandomFile('direct');
    readFileSync(path);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
    } catch (error) {
      throw new Error(`O_DIRECT open failed in ${dir}: ${String(error)}`);
    }
    await withIo({}, async (io) => {
      await readAround(io, fd, data, 1000, 32, () => allocAligned(BLOCK, BLOCK));
      expect(io.readsOnLoop).toBe(0);
    }).finally(() => closeSync(fd));
  });

  it('cachedReadsOnLoop: false and loopReadBudgetUs: 0 keep every read on the workers', async () => {
    const { path, data } = writeRandomFile('off');
    readFileSync(path);
    const fd = openSync(path, 'r');
    try {
      for (const options of [{ cachedReadsOnLoop: false }, { loopReadBudgetUs: 0 }]) {
        await withIo(options, async (io) => {
          await readAround(io, fd, data, 2000);
          expect(io.readsOnLoop).toBe(0);
        });
      }
    } finally {
      closeSync(fd);
    }
  });

  it('a chain of awaited cache hits still lets the event loop turn (the per-turn budget)', async () => {
    await withWarmFile('chain', TIME_BLIND, async (io, fd, data) => {
      await readAround(io, fd, data, 3000); // warm by the meter
      const before = io.readsOnLoop;
      let done = 0;
      let doneWhenLoopTurned: number | undefined;
      let doneWhenTimerFired: number | undefined;
      setImmediate(() => (doneWhenLoopTurned = done));
      setTimeout(() => (doneWhenTimerFired = done), 1);
      const buffer = Buffer.alloc(BLOCK);
      for (; done < 5000; done++) await io.readv(fd, [buffer], (done % BLOCKS) * BLOCK);
      expect(io.readsOnLoop - before).toBeGreaterThan(2500); // most were hits on the loop...
      expect(doneWhenLoopTurned).toBeLessThan(5000); // ...and yet the loop turned mid-chain
      expect(doneWhenTimerFired).toBeLessThan(5000); // timers too: delivery waits for the check phase, never loops
    });
  });

  it('short reads at the end of the file and reads past it are exact', async () => {
    await withWarmFile('eof', TIME_BLIND, async (io, fd, data) => {
      await readAround(io, fd, data, 3000);
      const tail = Buffer.alloc(BLOCK);
      expect(await io.readv(fd, [tail], data.length - 100)).toBe(100);
      expect(tail.subarray(0, 100).equals(data.subarray(data.length - 100))).toBe(true);
      expect(await io.readv(fd, [Buffer.alloc(BLOCK)], data.length + BLOCK)).toBe(0);
      expect(await io.readv(fd, [Buffer.alloc(BLOCK)], BigInt(data.length))).toBe(0);
    });
  });

  it('odd file types never block the loop: a FIFO fails with ESPIPE, /dev/zero reads zeros, as on the workers', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fifoFd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK); // no writer needed
    const zeroFd = openSync('/dev/zero', 'r');
    await withIo(TIME_BLIND, async (io) => {
      for (let i = 0; i < 600; i++) {
        await expect(io.readv(fifoFd, [Buffer.alloc(BLOCK)], 0)).rejects.toMatchObject({ code: 'ESPIPE', syscall: 'preadv2' });
      }
      const zeros = Buffer.alloc(BLOCK, 1);
      for (let i = 0; i < 600; i++) expect(await io.readv(zeroFd, [zeros], i * BLOCK)).toBe(BLOCK);
      expect(zeros.every((byte) => byte === 0)).toBe(true);
    }).finally(() => {
      closeSync(fifoFd);
      closeSync(zeroFd);
    });
  });

  it('refuses bad input, aborted signals, closed pools and bad fds as the worker path does', async () => {
    const { path, data } = writeRandomFile('bad');
    readFileSync(path);
    const fd = openSync(path, 'r');
    const io = createThreadPoolIo();
    try {
      await readAround(io, fd, data, 3000);
      await expect(io.readv(fd, [Buffer.alloc(BLOCK)], -1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('-1') });
      await expect(io.readv(fd, [] as Uint8Array[], 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(io.readv(fd, [Buffer.alloc(BLOCK)], 0, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
      await expect(io.readv(2_000_000, [Buffer.alloc(BLOCK)], 0)).rejects.toMatchObject({ code: 'EBADF', syscall: 'preadv2' });
    } finally {
      await io.close();
      closeSync(fd);
    }
    await expect(io.readv(fd, [Buffer.alloc(BLOCK)], 0)).rejects.toMatchObject({ code: 'EBADF', message: expect.stringContaining('closed') });
  });

  /**
   * Runs `body` in a bare node process (vitest's own handles keep every test's loop alive)
   * after it opened a warm file of BLOCKS blocks as `fd` with a time-blind pool as `io`
   * and `buffer` of one block; returns what it printed, trimmed. The process must exit on
   * its own within `timeoutMs`.
   */
  const runBareScript = (name: string, body: string, timeoutMs: number): string => {
    const { path } = writeRandomFile(name);
    readFileSync(path);
    const script = `
      import { openSync } from 'node:fs';
      import { createThreadPoolIo } from '@vmlink/aio-threadpool';
      const io = createThreadPoolIo(${JSON.stringify(TIME_BLIND)});
      const fd = openSync(${JSON.stringify(path)}, 'r');
      const buffer = Buffer.alloc(${BLOCK});
      ${body}`;
    const cwd = fileURLToPath(new URL('..', import.meta.url));
    return execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd, encoding: 'utf8', timeout: timeoutMs }).trim();
  };

  it('reads in flight keep a process with nothing else alive, on the workers and served in the hand-over', () => {
    const printed = runBareScript(
      'alive',
      `let total = 0;
      for (let i = 0; i < 3000; i++) total += await io.readv(fd, [buffer], (i % ${BLOCKS}) * ${BLOCK});
      console.log(total, io.readsOnLoop > 0);
      await io.close();`,
      60_000,
    );
    expect(printed).toBe(`${3000 * BLOCK} true`);
  });

  it('a process whose reads were served in the hand-over exits on its own, the pool never closed', () => {
    // The check and idle handles that deliver those reads must not hold the loop once idle.
    const printed = runBareScript(
      'exit',
      `for (let i = 0; i < 3000; i++) await io.readv(fd, [buffer], (i % ${BLOCKS}) * ${BLOCK});
      console.log(io.readsOnLoop > 0);`,
      30_000,
    );
    expect(printed).toBe('true');
  });

  it('rejects bad options naming them', () => {
    expect(() => createThreadPoolBackend({ cachedReadsOnLoop: 'yes' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.cachedReadsOnLoop') }),
    );
    expect(() => createThreadPoolBackend({ loopReadBudgetUs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('-1') }));
    expect(() => createThreadPoolBackend({ coldReads: { window: 0 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.coldReads.window') }));
  });
});
