// The thread pool's polling (setPolling, pollStats; src/aio/threadpool/loop_poller.cc and
// the workers' spin) on real workers and the real event loop.
import { createRequire } from 'node:module';
import { execFile, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ThreadPoolConfig } from '../index.cjs';
import { completionCollector, submitBatch } from './helpers/batch.mjs';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();
const layout = binding.ThreadPool.layout;
type Pool = InstanceType<typeof binding.ThreadPool>;
type PoolNumbers = Omit<ThreadPoolConfig, 'completions'>;

const READ = layout.ops.read!;
const SLEPT = layout.flags.workerSlept;

const dir = mkdtempSync(join(tmpdir(), 'vmlink-native-polling-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dataPath = join(dir, 'data');
writeFileSync(dataPath, Buffer.alloc(64 * 1024, 7));

function fixed(threads: number): PoolNumbers {
  return { minThreads: threads, maxThreads: threads, idleTimeoutMs: 5000, maxHoldUs: 0, maxHeld: 1, scheduling: 'normal' };
}

function openPool(numbers: PoolNumbers) {
  const collector = completionCollector(layout, 64);
  const pool: Pool = new binding.ThreadPool({ ...numbers, completions: collector.completions }, collector.onComplete);
  return { pool, ...collector };
}

function stats(pool: Pool) {
  const [polls, hits, spentUs, cutShort] = pool.pollStats();
  return { polls, hits, spentUs, cutShort };
}

/**
 * Reads 4 KiB one at a time, `count` times, waiting for each. The buffer stays referenced
 * until each completion (the binding's contract: a collected buffer would be written freed).
 */
async function sequentialReads(pool: Pool, next: (n: number) => Promise<unknown[]>, fd: number, count: number) {
  const flags: number[] = [];
  const buffer = new Uint8Array(4096);
  for (let i = 0; i < count; i++) {
    buffer.fill(0);
    submitBatch(pool, layout, [{ slot: 1, op: READ, fd, position: (i % 16) * 4096, buffers: buffer }]);
    const [done] = (await next(1)) as { result: number; flags: number }[];
    expect(done!.result).toBe(4096);
    expect(buffer[4095]).toBe(7);
    flags.push(done!.flags);
  }
  return flags;
}

describe('ThreadPool polling (raw binding)', () => {
  it('setPolling takes integers 0..10000 us for each wait; bad values are typed errors naming the argument', () => {
    const { pool } = openPool(fixed(1));
    try {
      expect(stats(pool)).toEqual({ polls: 0, hits: 0, spentUs: 0, cutShort: 0 });
      pool.setPolling(0, 0);
      pool.setPolling(10_000, 10_000);
      for (const [args, code, text] of [
        [[-1, 0], 'ERR_OUT_OF_RANGE', 'loopPollUs'],
        [[10_001, 0], 'ERR_OUT_OF_RANGE', 'Received 10001'],
        [[0, 1.5], 'ERR_OUT_OF_RANGE', 'workerSpinUs'],
        [[0, Number.NaN], 'ERR_OUT_OF_RANGE', 'workerSpinUs'],
      ] as const) {
        expect(() => pool.setPolling(args[0], args[1])).toThrow(expect.objectContaining({ code, message: expect.stringContaining(text) }));
      }
      expect(() => pool.setPolling('1' as unknown as number, 0)).toThrow(TypeError);
      expect(() => pool.setPolling(0, undefined as unknown as number)).toThrow(/workerSpinUs must be a number/);
    } finally {
      pool.destroy();
    }
  });

  it('the loop thread waits for a completion before it blocks: polls that saw one are counted; 0 turns it off', async () => {
    const fd = openSync(dataPath, 'r');
    const { pool, next } = openPool(fixed(1));
    try {
      await sequentialReads(pool, next, fd, 5);
      expect(stats(pool).polls).toBe(0);
      // 10 ms: far more than a cached 4 KiB read takes a worker, even on a loaded machine.
      pool.setPolling(10_000, 0);
      await sequentialReads(pool, next, fd, 30);
      const on = stats(pool);
      // None without polling (checked below); how many of the 30 is timing: a turn that
      // finds other I/O ready (vitest's own channel, under load) does not look.
      expect(on.hits).toBeGreaterThanOrEqual(3);
      expect(on.hits).toBeLessThanOrEqual(on.polls);
      pool.setPolling(0, 0);
      await sequentialReads(pool, next, fd, 10);
      expect(stats(pool).polls).toBe(on.polls);
    } finally {
      pool.destroy();
      closeSync(fd);
    }
  });

  it('a worker looks for the next request before it sleeps: most requests handed over right after a completion find it awake', async () => {
    const fd = openSync(dataPath, 'r');
    const { pool, next } = openPool(fixed(1));
    try {
      pool.setPolling(0, 10_000);
      const flags = await sequentialReads(pool, next, fd, 21);
      // The first one woke it; of the rest, each came within the worker's 10 ms look.
      const awake = flags.slice(1).filter((flag) => (flag & SLEPT) === 0).length;
      expect(awake).toBeGreaterThanOrEqual(10);
    } finally {
      pool.destroy();
      closeSync(fd);
    }
  });

  describe('with a request in flight that no worker takes (minThreads 0, none spawned)', () => {
    it('other I/O cuts a wait short: a peer process answering 20 lines, 2 ms apart, is served as it answers', async () => {
      const { pool, next } = openPool({ minThreads: 0, maxThreads: 1, idleTimeoutMs: 5000, maxHoldUs: 0, maxHeld: 1, scheduling: 'normal' });
      const fd = openSync(dataPath, 'r');
      const echo = spawn(process.execPath, ['-e', "process.stdin.on('data', (d) => setTimeout(() => process.stdout.write(d), 2))"], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const parked = new Uint8Array(4096);
      try {
        submitBatch(pool, layout, [{ slot: 1, op: READ, fd, position: 0, buffers: parked }]);
        expect(pool.queued).toBe(1);
        pool.setPolling(10_000, 0);
        const lines: string[] = [];
        let pending = '';
        let waiter: (() => void) | undefined;
        echo.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          pending += chunk;
          let newline;
          while ((newline = pending.indexOf('\n')) >= 0) {
            lines.push(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
          }
          waiter?.();
        });
        const before = stats(pool);
        for (let i = 0; i < 20; i++) {
          const arrived = new Promise<void>((resolve) => (waiter = resolve));
          echo.stdin.write(`line ${i}\n`);
          await arrived;
        }
        const after = stats(pool);
        expect(lines).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i}`));
        const polls = after.polls - before.polls;
        const cutShort = after.cutShort - before.cutShort;
        // Each answer ended a wait that had nothing of ours to see; a wait that ran its
        // whole 10 ms would have kept the answer waiting.
        expect(cutShort).toBeGreaterThanOrEqual(10);
        expect(polls - cutShort - (after.hits - before.hits)).toBeLessThanOrEqual(5);
        expect(pool.spawn(1)).toBe(1);
        expect((await next(1))[0]).toMatchObject({ slot: 1, result: 4096 });
        expect(parked[0]).toBe(7);
      } finally {
        echo.kill();
        pool.destroy();
        closeSync(fd);
      }
    });

    it('a timer due sooner bounds a wait: twenty 2 ms timers do not wait 10 ms each', async () => {
      const { pool, next } = openPool({ minThreads: 0, maxThreads: 1, idleTimeoutMs: 5000, maxHoldUs: 0, maxHeld: 1, scheduling: 'normal' });
      const fd = openSync(dataPath, 'r');
      const parked = new Uint8Array(4096);
      try {
        submitBatch(pool, layout, [{ slot: 1, op: READ, fd, position: 0, buffers: parked }]);
        pool.setPolling(10_000, 0);
        const before = stats(pool);
        for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 2));
        const after = stats(pool);
        const polls = after.polls - before.polls;
        expect(polls).toBeGreaterThanOrEqual(10);
        // Bounded by the timer (libuv counts in whole ms: up to ~3 ms each), not by the 10 ms poll.
        expect((after.spentUs - before.spentUs) / polls).toBeLessThan(5000);
        pool.spawn(1);
        expect((await next(1))[0]).toMatchObject({ slot: 1, result: 4096 });
        expect(parked[0]).toBe(7);
      } finally {
        pool.destroy();
        closeSync(fd);
      }
    });
  });

  it('a pool destroyed by the callback its poll delivered: no crash, nothing more delivered', async () => {
    const fd = openSync(dataPath, 'r');
    let hits = 0;
    try {
      for (let i = 0; i < 20; i++) {
        const completions = new Float64Array(4 * layout.completionStride);
        let calls = 0;
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        const pool: Pool = new binding.ThreadPool({ ...fixed(1), completions }, () => {
          calls++;
          pool.destroy();
          resolve();
        });
        pool.setPolling(10_000, 0);
        // Both stay referenced: destroy() joins the worker that may still be reading the second.
        const buffers = [new Uint8Array(4096), new Uint8Array(4096)];
        submitBatch(pool, layout, [
          { slot: 1, op: READ, fd, position: 0, buffers: buffers[0] },
          { slot: 2, op: READ, fd, position: 4096, buffers: buffers[1] },
        ]);
        await done;
        expect(buffers.some((buffer) => buffer[0] === 7)).toBe(true);
        await new Promise((r) => setTimeout(r, 5));
        expect(calls).toBe(1);
        hits += stats(pool).hits;
      }
      // The path under test ran: at least one of those deliveries came from a poll.
      expect(hits).toBeGreaterThanOrEqual(1);
    } finally {
      closeSync(fd);
    }
  });

  it('polling never keeps the process alive: a process with a polling pool and nothing in flight exits', async () => {
    const script = `
      const { loadBinding } = require(${JSON.stringify(require.resolve('../index.cjs'))});
      const { ThreadPool } = loadBinding();
      const fs = require('node:fs');
      const fd = fs.openSync(${JSON.stringify(dataPath)}, 'r');
      const layout = ThreadPool.layout;
      const completions = new Float64Array(4 * layout.completionStride);
      const buffer = new Uint8Array(4096); // referenced until its completion, as the binding requires
      const pool = new ThreadPool({ minThreads: 2, maxThreads: 2, idleTimeoutMs: 60000, maxHoldUs: 0, maxHeld: 1, scheduling: 'normal', completions }, () => {
        process.stdout.write('done ' + completions[layout.completion.result] + ' ' + buffer[0] + '\\n');
      });
      pool.setPolling(100, 100);
      const requests = new Float64Array(layout.requestStride);
      requests[layout.request.op] = layout.ops.read;
      requests[layout.request.fd] = fd;
      pool.submit(requests, 1, [buffer], new Int32Array(1), new Float64Array(2 * layout.recordStride));
    `;
    const output = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', script], { timeout: 30_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
    );
    expect(output).toBe('done 4096 7\n');
  });
});
