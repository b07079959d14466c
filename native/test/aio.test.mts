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

function meta(...requests: number[][]): Uint32Array {
  return Uint32Array.from(requests.flat());
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
    expect(() => new binding.ThreadPool(0, () => {})).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => new binding.ThreadPool(1000, () => {})).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('1000') }));
    expect(() => new binding.ThreadPool(2, 'x' as unknown as () => void)).toThrow(TypeError);
    const pool = new binding.ThreadPool(1, () => {});
    expect(() => pool.submit([1] as unknown as Uint32Array, [])).toThrow(TypeError);
    expect(() => pool.submit(new Uint32Array(5), [])).toThrow(TypeError);
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
    const pool: Pool = new binding.ThreadPool(2, onComplete);
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
    const pool = new binding.ThreadPool(2, onComplete);
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
    const pool = new binding.ThreadPool(2, onComplete);
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
    const pool = new binding.ThreadPool(1, onComplete);
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
