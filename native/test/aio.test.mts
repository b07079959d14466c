import { createRequire } from 'node:module';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();
type Pool = InstanceType<typeof binding.ThreadPool>;

const dir = mkdtempSync(join(tmpdir(), 'vmlink-native-aio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const READ = 0;
const WRITE = 1;
const FSYNC = 2;

/** Collects completions until `count` requests have come back; returns them and how many callbacks carried them. */
function collector(): { onComplete: (c: Float64Array) => void; wait: (count: number) => Promise<{ rows: number[][]; callbacks: number }> } {
  const rows: number[][] = [];
  let callbacks = 0;
  let waiter: (() => void) | undefined;
  let wanted = Infinity;
  return {
    onComplete(completions) {
      callbacks += 1;
      // 6 numbers per request: id, result, partial, queue wait, service time, flags.
      for (let i = 0; i < completions.length; i += 6) rows.push(Array.from(completions.subarray(i, i + 6)));
      if (rows.length >= wanted) waiter?.();
    },
    wait(count) {
      wanted = count;
      return new Promise((resolve) => {
        waiter = () => resolve({ rows, callbacks });
        if (rows.length >= count) waiter();
      });
    },
  };
}

/** Meta rows of 8 fields; rows given with 6 (no length) get length 0. */
function meta(...requests: number[][]): Uint32Array {
  return Uint32Array.from(requests.flatMap((request) => (request.length === 6 ? [...request, 0, 0] : request)));
}

/** A fixed-size pool config (no coalescing numbers of note). */
function fixed(threads: number): ConstructorParameters<typeof binding.ThreadPool>[0] {
  return { minThreads: threads, maxThreads: threads, idleTimeoutMs: 5000, maxHoldUs: 200, maxHeld: 16 };
}

describe('addressOffset', () => {
  it('reports the real address modulo a power of two, honouring byteOffset', () => {
    const buffer = Buffer.alloc(8192);
    const base = binding.addressOffset(buffer, 4096);
    expect(binding.addressOffset(buffer.subarray(1), 4096)).toBe((base + 1) % 4096);
    expect(binding.addressOffset(buffer.subarray(100), 4096)).toBe((base + 100) % 4096);
    expect(binding.addressOffset(new DataView(buffer.buffer, buffer.byteOffset + 3), 4096)).toBe((base + 3) % 4096);
    expect(binding.addressOffset(buffer, 1)).toBe(0);
  });

  it('rejects non-views and bad alignments', () => {
    expect(() => binding.addressOffset('x' as unknown as Buffer, 8)).toThrow(TypeError);
    expect(() => binding.addressOffset(Buffer.alloc(1), 3)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('3') }));
  });
});

describe('ThreadPool (raw binding)', () => {
  it('validates its arguments', () => {
    expect(() => new binding.ThreadPool({ ...fixed(1), maxThreads: 0 }, () => {})).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => new binding.ThreadPool(fixed(1000), () => {})).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('1000') }));
    expect(() => new binding.ThreadPool({ ...fixed(4), maxThreads: 2 }, () => {})).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('minThreads (4)') }));
    expect(() => new binding.ThreadPool({ ...fixed(1), idleTimeoutMs: 0.5 }, () => {})).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('idleTimeoutMs') }));
    expect(() => new binding.ThreadPool(2 as unknown as ReturnType<typeof fixed>, () => {})).toThrow(TypeError);
    expect(() => new binding.ThreadPool({ ...fixed(1), maxHeld: 'x' as unknown as number }, () => {})).toThrow(TypeError);
    expect(() => new binding.ThreadPool(fixed(2), 'x' as unknown as () => void)).toThrow(TypeError);
    const pool = new binding.ThreadPool(fixed(1), () => {});
    expect(() => pool.submit([1] as unknown as Uint32Array, [])).toThrow(TypeError);
    expect(() => pool.submit(new Uint32Array(6), [])).toThrow(TypeError);
    expect(() => pool.submit(meta([1, 9, 0, 0, 0, 0]), [])).toThrow(TypeError);
    expect(() => pool.submit(meta([1, READ, 0, 2, 0, 0]), [Buffer.alloc(1)])).toThrow(TypeError);
    expect(() => pool.submit(meta([1, READ, 0, 1, 0, 0]), ['x' as unknown as Buffer])).toThrow(TypeError);
    expect(pool.inFlight).toBe(0);
    pool.destroy();
  });

  it('writes and reads vectors at 64-bit positions, gathering from sub-arrays', async () => {
    const path = join(dir, 'vectors');
    writeFileSync(path, '');
    const fd = openSync(path, 'r+');
    const { onComplete, wait } = collector();
    const pool: Pool = new binding.ThreadPool(fixed(2), onComplete);
    try {
      const big = Buffer.from('xxHELLOxx');
      const position = 2 ** 33 + 5;
      pool.submit(meta([1, WRITE, fd, 2, position % 2 ** 32, Math.floor(position / 2 ** 32)]), [big.subarray(2, 7), Buffer.from(' WORLD')]);
      const { rows } = await wait(1);
      expect(rows[0]!.slice(0, 3)).toEqual([1, 11, 0]);
      expect(rows[0]![3]).toBeGreaterThanOrEqual(0);
      const check = Buffer.alloc(11);
      expect(readSync(fd, check, 0, 11, position)).toBe(11);
      expect(check.toString()).toBe('HELLO WORLD');
    } finally {
      pool.destroy();
      closeSync(fd);
    }
  });

  it('hands many completions to JS in few callbacks (one wake-up per batch)', async () => {
    const path = join(dir, 'batch');
    writeFileSync(path, Buffer.alloc(64 * 4096, 7));
    const fd = openSync(path, 'r');
    const { onComplete, wait } = collector();
    const pool = new binding.ThreadPool(fixed(2), onComplete);
    try {
      const buffers = Array.from({ length: 64 }, () => Buffer.alloc(4096));
      pool.submit(meta(...buffers.map((_, i) => [i + 1, READ, fd, 1, i * 4096, 0])), buffers);
      expect(pool.inFlight).toBe(64);
      // Keep the JS thread busy while the workers finish: their completions pile up and
      // arrive together.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
      const { rows, callbacks } = await wait(64);
      expect(rows.map((row) => row[0]).sort((a, b) => a! - b!)).toEqual(buffers.map((_, i) => i + 1));
      expect(rows.every((row) => row[1] === 4096)).toBe(true);
      expect(callbacks).toBe(1);
      expect(buffers.every((buffer) => buffer.every((byte) => byte === 7))).toBe(true);
      expect(pool.inFlight).toBe(0);
    } finally {
      pool.destroy();
      closeSync(fd);
    }
  });

  it('reports errors as -errno and fsync results as 0', async () => {
    const path = join(dir, 'errors');
    writeFileSync(path, 'abc');
    const fd = openSync(path, 'r');
    const { onComplete, wait } = collector();
    const pool = new binding.ThreadPool(fixed(2), onComplete);
    try {
      pool.submit(meta([1, WRITE, fd, 1, 0, 0], [2, READ, 1_000_000, 1, 0, 0], [3, FSYNC, fd, 0, 0, 0]), [Buffer.from('z'), Buffer.alloc(1)]);
      const { rows } = await wait(3);
      const byId = new Map(rows.map((row) => [row[0], row[1]]));
      expect(byId.get(1)).toBe(-9); // EBADF: the fd is read-only
      expect(byId.get(2)).toBe(-9); // EBADF: no such fd
      expect(byId.get(3)).toBe(0);
      expect(readFileSync(path, 'utf8')).toBe('abc');
    } finally {
      pool.destroy();
      closeSync(fd);
    }
  });

  it('cancel is false for unknown or finished requests; destroy is final and idempotent', async () => {
    const { onComplete, wait } = collector();
    const pool = new binding.ThreadPool(fixed(1), onComplete);
    expect(pool.cancel(42)).toBe(false);
    pool.submit(meta([7, FSYNC, 0, 0, 0, 0]), []);
    await wait(1);
    expect(pool.cancel(7)).toBe(false);
    expect(pool.threads).toBe(1);
    pool.destroy();
    pool.destroy();
    expect(() => pool.submit(meta([8, FSYNC, 0, 0, 0, 0]), [])).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_CLOSED' }));
  });
});

describe('ThreadPool workers (raw binding)', () => {
  /** Polls a condition that a worker thread changes on its own (no event reaches JS for it). */
  async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('spawn adds workers up to maxThreads; workers idle past idleTimeoutMs exit down to minThreads', async () => {
    const pool = new binding.ThreadPool({ minThreads: 1, maxThreads: 4, idleTimeoutMs: 50, maxHoldUs: 0, maxHeld: 1 }, () => {});
    try {
      expect(pool.threads).toBe(1);
      expect(pool.spawn(10)).toBe(3);
      expect(pool.spawn(1)).toBe(0);
      expect(pool.threads).toBe(4);
      expect(pool.peakThreads).toBe(4);
      await until(() => pool.threads === 1, 'idle workers to exit');
      expect(pool.peakThreads).toBe(4);
      await until(() => pool.idleThreads === 1, 'the last worker to wait');
      expect(pool.spawn(0)).toBe(0);
      expect(pool.spawn(2)).toBe(2);
    } finally {
      pool.destroy();
    }
    expect(() => pool.spawn(1)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_CLOSED' }));
  });

  it('a pool with minThreads 0 runs work on a spawned worker, then has none', async () => {
    const { onComplete, wait } = collector();
    const pool = new binding.ThreadPool({ minThreads: 0, maxThreads: 2, idleTimeoutMs: 20, maxHoldUs: 0, maxHeld: 1 }, onComplete);
    try {
      expect(pool.threads).toBe(0);
      pool.submit(meta([1, FSYNC, 0, 0, 0, 0]), []);
      expect(pool.queued).toBe(1);
      expect(pool.spawn(1)).toBe(1);
      const { rows } = await wait(1);
      expect(rows[0]![0]).toBe(1);
      await until(() => pool.threads === 0, 'the worker to exit');
    } finally {
      pool.destroy();
    }
  });

  it('fallocate (5), ftruncate (6) and discard (7) run on the workers; errors are -errno', async () => {
    const FALLOCATE = 5;
    const TRUNCATE = 6;
    const DISCARD = 7;
    const KEEP_SIZE = 1;
    const PUNCH_HOLE = 2;
    const path = join(dir, 'space');
    writeFileSync(path, Buffer.alloc(64 * 1024, 5));
    const fd = openSync(path, 'r+');
    const { onComplete, wait } = collector();
    const pool = new binding.ThreadPool(fixed(1), onComplete);
    try {
      pool.submit(
        meta(
          [1, FALLOCATE, fd, PUNCH_HOLE | KEEP_SIZE, 4096, 0, 8192, 0],
          [2, DISCARD, fd, 0, 32768, 0, 4096, 0],
          [3, FALLOCATE, fd, 0, 65536, 0, 4096, 0],
          [4, FALLOCATE, fd, PUNCH_HOLE, 0, 0, 4096, 0],
          [5, FALLOCATE, fd, 0, 0, 0, 0, 0],
        ),
        [],
      );
      const first = await wait(5);
      const byId = new Map(first.rows.map((row) => [row[0], row]));
      expect(byId.get(1)![1]).toBe(0);
      expect(byId.get(2)![1]).toBe(0);
      expect(byId.get(2)![5]).toBe(0); // a regular file: punch-hole, not BLKDISCARD
      expect(byId.get(3)![1]).toBe(0);
      expect(byId.get(4)![1]).toBe(-95); // EOPNOTSUPP: PUNCH_HOLE needs KEEP_SIZE
      expect(byId.get(5)![1]).toBe(-22); // EINVAL: length 0
      const data = readFileSync(path);
      expect(data.length).toBe(65536 + 4096);
      expect(data.subarray(4096, 12288).every((byte) => byte === 0)).toBe(true);
      expect(data.subarray(32768, 36864).every((byte) => byte === 0)).toBe(true);
      expect(data.subarray(12288, 32768).every((byte) => byte === 5)).toBe(true);
      pool.submit(meta([6, TRUNCATE, fd, 0, 100, 0, 0, 0]), []);
      const second = await wait(6);
      expect(second.rows.find((row) => row[0] === 6)![1]).toBe(0);
      expect(readFileSync(path).length).toBe(100);
    } finally {
      pool.destroy();
      closeSync(fd);
    }
  });
});

describe('fileFallocate / fileDiscard (libuv pool)', () => {
  it('punch a hole, zero a range, and reject with errno-named errors', async () => {
    const path = join(dir, 'file-space');
    writeFileSync(path, Buffer.alloc(16384, 9));
    const fd = openSync(path, 'r+');
    try {
      await binding.fileFallocate(fd, 0x02 | 0x01, 0n, 4096n);
      await binding.fileDiscard(fd, 8192n, 4096n);
      const data = readFileSync(path);
      expect(data.length).toBe(16384);
      expect(data.subarray(0, 4096).every((byte) => byte === 0)).toBe(true);
      expect(data.subarray(4096, 8192).every((byte) => byte === 9)).toBe(true);
      expect(data.subarray(8192, 12288).every((byte) => byte === 0)).toBe(true);
      await expect(binding.fileFallocate(fd, 0x02, 0n, 4096n)).rejects.toMatchObject({ code: 'EOPNOTSUPP', syscall: 'fallocate' });
      await expect(binding.fileDiscard(1_000_000, 0n, 1n)).rejects.toMatchObject({ code: 'EBADF', syscall: 'fallocate' });
      expect(() => binding.fileFallocate(fd, 0, 1 as unknown as bigint, 1n)).toThrow(TypeError);
      expect(() => binding.fileFallocate(fd, 0, -1n, 1n)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    } finally {
      closeSync(fd);
    }
  });
});
