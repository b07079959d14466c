import { createRequire } from 'node:module';
import { closeSync, constants as fsConstants, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bySlot, completionCollector, encodeBatch, submitBatch, type TestRequest } from './helpers/batch.mjs';
import { shortWrite } from './helpers/short-write.mjs';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();
const layout = binding.IoSubmitContext.layout;
type Context = InstanceType<typeof binding.IoSubmitContext>;

function opCode(name: string): number {
  const code = layout.ops[name];
  if (code === undefined) throw new Error(`IoSubmitContext.layout.ops has no ${name}`);
  return code;
}
const READ = opCode('read');
const WRITE = opCode('write');
const FSYNC = opCode('fsync');
const FDATASYNC = opCode('fdatasync');
const { EBADF, EBUSY, EINVAL, EFBIG, EOPNOTSUPP } = constants.errno;

/** A context whose completion table (maxInFlight completions) is collected. */
function openContext(maxInFlight: number) {
  const collector = completionCollector(layout, maxInFlight);
  const ctx: Context = new binding.IoSubmitContext({ maxInFlight, completions: collector.completions }, collector.onComplete);
  return { ctx, ...collector };
}

/** A view of `length` bytes of `buffer` whose address is `offset` past a multiple of `alignment`. */
function viewAt(buffer: Buffer, alignment: number, offset: number, length: number): Buffer {
  const start = (alignment - binding.addressOffset(buffer, alignment) + offset) % alignment;
  return buffer.subarray(start, start + length);
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('IoSubmitContext (native)', () => {
  let dir: string;
  let path: string;
  const data = Buffer.alloc(256 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vmlink-native-iosubmit-'));
    path = join(dir, 'data.bin');
    writeFileSync(path, data);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads 40 requests through two io_submit calls (32 + 8): a status per request, a record per call, every completion', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next, callbacks } = openContext(64);
    try {
      const buffers = Array.from({ length: 40 }, () => Buffer.alloc(4096));
      const outcome = submitBatch(ctx, layout, buffers.map((buffer, i) => ({ slot: i, op: READ, fd, position: i * 4096, buffers: buffer })));
      expect(outcome.recordCount).toBe(2);
      expect(outcome.records.map((record) => record.slice(0, 2))).toEqual([
        [layout.maxIocbsPerCall, layout.maxIocbsPerCall],
        [8, 8],
      ]);
      expect(outcome.records.every((record) => record[2]! >= 0)).toBe(true);
      expect(outcome.status).toEqual(Array(40).fill(layout.status.submitted));
      expect(ctx.inFlight).toBe(40);
      const done = await next(40);
      expect(done.map((c) => c.slot).sort((a, b) => a - b)).toEqual([...Array(40).keys()]);
      for (const completion of done) {
        expect(completion).toMatchObject({ result: 4096, partial: 0, queueWaitUs: 0, flags: 0 });
        expect(completion.serviceUs).toBeGreaterThanOrEqual(0);
      }
      expect(callbacks.every((count) => count >= 1 && count <= 64)).toBe(true);
      buffers.forEach((buffer, i) => expect(buffer.equals(data.subarray(i * 4096, (i + 1) * 4096))).toBe(true));
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('vectored write, fsync and fdatasync, then read back through readv; one buffer at a position past 4 GiB', async () => {
    const file = join(dir, 'rw.bin');
    writeFileSync(file, Buffer.alloc(8192));
    const fd = openSync(file, 'r+');
    const { ctx, next } = openContext(8);
    try {
      const parts = [Buffer.from('hello '), Buffer.from('io_submit')];
      expect(submitBatch(ctx, layout, [{ slot: 3, op: WRITE, fd, position: 100, buffers: parts }]).status).toEqual([0]);
      expect(await next(1)).toMatchObject([{ slot: 3, result: 15 }]);
      submitBatch(ctx, layout, [
        { slot: 0, op: FSYNC, fd },
        { slot: 1, op: FDATASYNC, fd },
      ]);
      expect((await next(2)).map((c) => c.result)).toEqual([0, 0]);
      expect(readFileSync(file).subarray(100, 115).toString()).toBe('hello io_submit');
      const a = Buffer.alloc(6);
      const b = Buffer.alloc(9);
      submitBatch(ctx, layout, [{ slot: 5, op: READ, fd, position: 100, buffers: [a, b] }]);
      expect(await next(1)).toMatchObject([{ slot: 5, result: 15 }]);
      expect(`${a.toString()}${b.toString()}`).toBe('hello io_submit');

      const far = 2 ** 32 + 4096 + 7;
      submitBatch(ctx, layout, [{ slot: 6, op: WRITE, fd, position: far, buffers: Buffer.from('far away') }]);
      expect(await next(1)).toMatchObject([{ slot: 6, result: 8 }]);
      const check = Buffer.alloc(8);
      expect(readSync(fd, check, 0, 8, far)).toBe(8);
      expect(check.toString()).toBe('far away');
      const back = Buffer.alloc(8);
      submitBatch(ctx, layout, [{ slot: 7, op: READ, fd, position: far, buffers: back }]);
      expect(await next(1)).toMatchObject([{ slot: 7, result: 8 }]);
      expect(back.toString()).toBe('far away');
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('fails only the request the kernel refuses (EBADF); the others are submitted around it', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next } = openContext(8);
    try {
      const outcome = submitBatch(ctx, layout, [
        { slot: 0, op: READ, fd, buffers: Buffer.alloc(512) },
        { slot: 1, op: READ, fd: 100000, buffers: Buffer.alloc(512) },
        { slot: 2, op: READ, fd, position: 512, buffers: Buffer.alloc(512) },
      ]);
      expect(outcome.status).toEqual([0, EBADF, 0]);
      expect(binding.errnoName(outcome.status[1]!)).toBe('EBADF');
      // io_submit takes the first, stops at the bad one (which then fails alone), and the rest go again.
      expect(outcome.records.map((record) => record.slice(0, 2))).toEqual([
        [3, 1],
        [2, 0],
        [1, 1],
      ]);
      expect(ctx.inFlight).toBe(2);
      expect((await next(2)).map((c) => c.slot).sort()).toEqual([0, 2]);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('a bad request fails alone at submit: EINVAL (slot, op, buffers), EBUSY (slot in flight), the kernel\'s errno (rwFlags)', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next, pending } = openContext(9);
    try {
      const outcome = submitBatch(ctx, layout, [
        { slot: 9, op: READ, fd, buffers: Buffer.alloc(8) }, // slot >= maxInFlight
        { slot: -1, op: READ, fd, buffers: Buffer.alloc(8) },
        { slot: 0, op: 5, fd, buffers: Buffer.alloc(8) }, // not an io_submit op
        { slot: 0, op: READ, fd }, // no buffer
        { slot: 0, op: READ, fd, buffers: [] },
        { slot: 0, op: READ, fd, buffers: new Uint16Array(4) as unknown as Uint8Array },
        { slot: 0, op: READ, fd, buffers: [Buffer.alloc(4), 'x' as unknown as Buffer] },
        { slot: 0, op: READ, fd, rwFlags: 1 << 20, buffers: Buffer.alloc(8) }, // no such RWF_ flag
        { slot: 1, op: READ, fd, buffers: Buffer.alloc(8) },
      ]);
      expect(outcome.status).toEqual([EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EOPNOTSUPP, 0]);
      expect(ctx.inFlight).toBe(1);
      // Slot 1 is in flight until its completion reaches JS (not within this tick).
      const again = submitBatch(ctx, layout, [{ slot: 1, op: READ, fd, buffers: Buffer.alloc(8) }]);
      expect(again.status).toEqual([EBUSY]);
      expect(again.recordCount).toBe(0);
      expect(await next(1)).toMatchObject([{ slot: 1, result: 8 }]);
      expect(submitBatch(ctx, layout, [{ slot: 1, op: READ, fd, buffers: Buffer.alloc(8) }]).status).toEqual([0]);
      expect(await next(1)).toMatchObject([{ slot: 1, result: 8 }]);
      expect(pending()).toEqual([]);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('a slot named twice in one submit() call: the second request fails alone with EBUSY, the first completes into its own buffer', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next, pending } = openContext(4);
    try {
      const first = Buffer.alloc(8);
      const second = Buffer.alloc(8);
      const outcome = submitBatch(ctx, layout, [
        { slot: 2, op: READ, fd, buffers: first },
        { slot: 2, op: READ, fd, position: 8, buffers: second },
        { slot: 3, op: READ, fd, position: 16, buffers: Buffer.alloc(8) },
      ]);
      expect(outcome.status).toEqual([0, EBUSY, 0]);
      const done = [...(await next(1)), ...(await next(1))].sort((a, b) => a.slot - b.slot);
      expect(done).toMatchObject([{ slot: 2, result: 8 }, { slot: 3, result: 8 }]);
      expect(first.equals(data.subarray(0, 8))).toBe(true);
      expect(second.equals(Buffer.alloc(8))).toBe(true);
      expect(pending()).toEqual([]);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('checks O_DIRECT alignment before submitting: misaligned offset, length or memory get status misaligned', async () => {
    const file = join(dir, 'direct.bin');
    writeFileSync(file, data.subarray(0, 64 * 1024));
    const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_DIRECT);
    const { ctx, next } = openContext(8);
    try {
      const dio = binding.dioAlignment(fd);
      const align = { memory: dio.memory, offset: dio.offset, length: dio.length };
      const unit = Math.max(dio.memory, dio.offset, dio.length);
      // Each view in a buffer of its own: a request submitted where an alignment is 1 cannot touch another's.
      const view = (memoryOffset: number, length: number) => viewAt(Buffer.alloc(length + 2 * dio.memory), dio.memory, memoryOffset, length);
      const aligned = view(0, unit);
      const outcome = submitBatch(ctx, layout, [
        { slot: 0, op: READ, fd, position: dio.offset > 1 ? 1 : 0, align, buffers: view(0, unit) },
        { slot: 1, op: READ, fd, position: 0, align, buffers: view(0, unit + (dio.length > 1 ? 1 : 0)) },
        { slot: 2, op: READ, fd, position: 0, align, buffers: view(dio.memory > 1 ? 1 : 0, unit) },
        { slot: 3, op: READ, fd, position: 0, align, buffers: [view(0, unit), view(dio.memory > 1 ? 1 : 0, unit)] },
        { slot: 4, op: READ, fd, position: unit, align, buffers: aligned },
        { slot: 5, op: FSYNC, fd, position: 1, align }, // no data: nothing to align
      ]);
      const { misaligned } = layout.status;
      expect(outcome.status.slice(0, 4)).toEqual(
        [dio.offset > 1, dio.length > 1, dio.memory > 1, dio.memory > 1].map((checked) => (checked ? misaligned : 0)),
      );
      expect(outcome.status.slice(4)).toEqual([0, 0]);
      const done = bySlot(await next(outcome.status.filter((status) => status === 0).length));
      expect(done.get(4)!.result).toBe(unit);
      expect(aligned.equals(data.subarray(unit, 2 * unit))).toBe(true);
      expect(done.get(5)!.result).toBe(0);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('a write cut short by the file size limit completes with the bytes written; the next fails with EFBIG', async () => {
    const file = join(dir, 'short-write');
    const [first, second] = await shortWrite('iosubmit', file);
    // The kernel cuts an AIO write at RLIMIT_FSIZE and reports the short count (no partial field needed).
    expect(first).toEqual({ slot: 0, result: 4096, partial: 0 });
    expect(second).toEqual({ slot: 1, result: -EFBIG, partial: 0 });
    expect(binding.errnoName(second!.result)).toBe('EFBIG');
    expect(readFileSync(file).length).toBe(4096);
  });

  it('rejects malformed submit() arguments as a whole (TypeError, RangeError) and submits nothing', () => {
    const { ctx } = openContext(2);
    try {
      const good = encodeBatch(layout, [{ slot: 0, op: FSYNC }]);
      const call = (requests: unknown, count: unknown, buffers: unknown, status: unknown, records: unknown) => () =>
        ctx.submit(requests as Float64Array, count as number, buffers as [], status as Int32Array, records as Float64Array);
      expect(call([1], 1, [], good.status, good.records)).toThrow(TypeError);
      expect(call(good.requests, '1', [], good.status, good.records)).toThrow(TypeError);
      expect(call(good.requests, 1, 'x', good.status, good.records)).toThrow(TypeError);
      expect(call(good.requests, 1, [], new Uint32Array(1), good.records)).toThrow(TypeError);
      expect(call(good.requests, 1, [], good.status, new Uint32Array(6))).toThrow(TypeError);
      const three = encodeBatch(layout, [0, 1, 0].map((slot) => ({ slot, op: FSYNC })));
      expect(call(three.requests, 3, [], three.status, three.records)).toThrow(expect.objectContaining({ name: 'RangeError' })); // > maxInFlight
      expect(call(good.requests, 2, [], new Int32Array(2), new Float64Array(9))).toThrow(RangeError); // past the request table
      expect(call(three.requests, 2, [], new Int32Array(1), three.records)).toThrow(RangeError); // past the status table
      expect(call(good.requests, 1, [], good.status, new Float64Array(layout.recordStride))).toThrow(RangeError); // needs count + 1 records
      expect(call(good.requests, -1, [], good.status, good.records)).toThrow(RangeError);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
    }
  });

  it('validates its config: maxInFlight (RangeError naming it) and a completion table of maxInFlight completions', () => {
    const make = (config: unknown, onComplete: unknown = () => {}) => () =>
      new binding.IoSubmitContext(config as { maxInFlight: number; completions: Float64Array }, onComplete as (count: number) => void).destroy();
    const table = (n: number) => new Float64Array(n * layout.completionStride);
    expect(make(4)).toThrow(TypeError);
    expect(make({ maxInFlight: 0, completions: table(1) })).toThrow(/maxInFlight must be in 1\.\.\d+; got 0/);
    expect(make({ maxInFlight: layout.maxInFlightLimit + 1, completions: table(1) })).toThrow(RangeError);
    expect(make({ maxInFlight: '4', completions: table(4) })).toThrow(TypeError);
    expect(make({ maxInFlight: 4 })).toThrow(expect.objectContaining({ message: expect.stringContaining('config.completions') }));
    expect(make({ maxInFlight: 4, completions: table(3) })).toThrow(TypeError);
    expect(make({ maxInFlight: 4, completions: new Uint32Array(4 * layout.completionStride) })).toThrow(TypeError);
    expect(make({ maxInFlight: 4, completions: table(4) }, 'x')).toThrow(TypeError);
    expect(make({ maxInFlight: 4, completions: table(4) })).not.toThrow();
  });

  it('reaps completions from the userspace ring', () => {
    const { ctx } = openContext(4);
    expect(ctx.usesRing).toBe(true);
    ctx.destroy();
    expect(ctx.usesRing).toBe(false);
  });

  it('io_setup EAGAIN names /proc/sys/fs/aio-max-nr and its current values', () => {
    const max = Number(readFileSync('/proc/sys/fs/aio-max-nr', 'utf8'));
    let caught: (Error & { code?: string; aioMaxNr?: number; aioNr?: number }) | undefined;
    try {
      new binding.IoSubmitContext({ maxInFlight: max + 1, completions: new Float64Array((max + 1) * layout.completionStride) }, () => {}).destroy();
    } catch (error) {
      caught = error as Error & { code?: string; aioMaxNr?: number; aioNr?: number };
    }
    expect(caught?.code).toBe('EAGAIN');
    expect(caught?.message).toContain(`raise /proc/sys/fs/aio-max-nr (now ${max}, in use `);
    expect(caught?.aioMaxNr).toBe(max);
    expect(typeof caught?.aioNr).toBe('number');
  });

  it('destroy closes the eventfd, unmaps the context, and is idempotent', () => {
    const { ctx } = openContext(4);
    const efd = ctx.eventFd;
    expect(readlinkSync(`/proc/self/fd/${efd}`)).toBe('anon_inode:[eventfd]');
    const mappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('[aio]')).length;
    const before = mappings();
    ctx.destroy();
    ctx.destroy();
    expect(ctx.destroyed).toBe(true);
    expect(ctx.eventFd).toBe(-1);
    expect(mappings()).toBe(before - 1);
    let target: string | undefined;
    try {
      target = readlinkSync(`/proc/self/fd/${efd}`);
    } catch {
      target = undefined;
    }
    expect(target).not.toBe('anon_inode:[eventfd]');
    const empty = encodeBatch(layout, []);
    expect(() => ctx.submit(empty.requests, 0, [], empty.status, empty.records)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_CLOSED' }));
  });

  it('leaks no fd across many contexts, used or not', async () => {
    const fd = openSync(path, 'r');
    try {
      const before = openFds();
      for (let round = 0; round < 20; round++) {
        const { ctx, next } = openContext(2);
        if (round % 2 === 0) {
          submitBatch(ctx, layout, [{ slot: 0, op: READ, fd, buffers: Buffer.alloc(64) }]);
          await next(1);
        }
        ctx.destroy();
      }
      expect(openFds()).toBe(before);
    } finally {
      closeSync(fd);
    }
  });

  it('destroy with requests in flight waits for them (io_destroy); no completion is delivered afterwards', async () => {
    const fd = openSync(path, 'r');
    const { ctx, callbacks } = openContext(8);
    try {
      const buffers = Array.from({ length: 8 }, () => Buffer.alloc(4096));
      const requests: TestRequest[] = buffers.map((buffer, i) => ({ slot: i, op: READ, fd, position: i * 4096, buffers: buffer }));
      expect(submitBatch(ctx, layout, requests).status).toEqual(Array(8).fill(0));
      ctx.destroy();
      expect(ctx.inFlight).toBe(0);
      buffers.forEach((buffer, i) => expect(buffer.equals(data.subarray(i * 4096, (i + 1) * 4096))).toBe(true));
      // Two full loop turns: a watcher left running would have delivered by now.
      for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(callbacks).toEqual([]);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });
});
