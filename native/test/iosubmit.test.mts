import { createRequire } from 'node:module';
import { closeSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();
const layout = binding.ioSubmitLayout;
type Context = InstanceType<typeof binding.IoSubmitContext>;

interface Completion {
  slot: number;
  res: number;
}

/** A context whose completions are collected; `next(n)` resolves once n more have arrived. */
function openContext(maxInFlight: number): { ctx: Context; batches: number[]; next: (n: number) => Promise<Completion[]> } {
  const received: Completion[] = [];
  const batches: number[] = [];
  let waiter: { n: number; resolve: (c: Completion[]) => void } | undefined;
  const ctx: Context = new binding.IoSubmitContext(maxInFlight, (count) => {
    batches.push(count);
    for (let i = 0; i < count; i++) received.push({ slot: ctx.completions[2 * i] as number, res: ctx.completions[2 * i + 1] as number });
    if (waiter !== undefined && received.length >= waiter.n) {
      const { resolve, n } = waiter;
      waiter = undefined;
      resolve(received.splice(0, n));
    }
  });
  const next = (n: number): Promise<Completion[]> =>
    received.length >= n ? Promise.resolve(received.splice(0, n)) : new Promise((resolve) => (waiter = { n, resolve }));
  return { ctx, batches, next };
}

function setRequest(ctx: Context, index: number, fields: { slot: number; fd: number; op: number; position?: number; align?: number }): void {
  const base = index * layout.requestStride;
  const f = layout.fields;
  const table = ctx.requests;
  const position = fields.position ?? 0;
  table[base + f.slot] = fields.slot;
  table[base + f.fd] = fields.fd;
  table[base + f.op] = fields.op;
  table[base + f.positionLow] = position % 2 ** 32;
  table[base + f.positionHigh] = Math.floor(position / 2 ** 32);
  table[base + f.rwFlags] = 0;
  table[base + f.alignMemory] = fields.align ?? 0;
  table[base + f.alignOffset] = fields.align ?? 0;
  table[base + f.alignLength] = fields.align ?? 0;
}

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

  it('reads 40 requests through two io_submit calls (32 + 8) and delivers every completion', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next } = openContext(64);
    try {
      const buffers = Array.from({ length: 40 }, () => Buffer.alloc(4096));
      buffers.forEach((_, i) => setRequest(ctx, i, { slot: i, fd, op: layout.ops.read, position: i * 4096 }));
      const records = ctx.submit(40, buffers);
      expect(records).toBe(2);
      const rec = Array.from(ctx.submitRecords.subarray(0, records * layout.submitRecordStride));
      expect([rec[0], rec[1], rec[3], rec[4]]).toEqual([32, 32, 8, 8]);
      expect(Array.from(ctx.status.subarray(0, 40)).every((s) => s === layout.status.submitted)).toBe(true);
      const done = await next(40);
      expect(done.map((c) => c.slot).sort((a, b) => a - b)).toEqual([...Array(40).keys()]);
      expect(done.every((c) => c.res === 4096)).toBe(true);
      buffers.forEach((buffer, i) => expect(buffer.equals(data.subarray(i * 4096, (i + 1) * 4096))).toBe(true));
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('vectored write, fsync, then read back through readv', async () => {
    const file = join(dir, 'rw.bin');
    writeFileSync(file, Buffer.alloc(8192));
    const fd = openSync(file, 'r+');
    const { ctx, next } = openContext(8);
    try {
      const parts = [Buffer.from('hello '), Buffer.from('io_submit')];
      setRequest(ctx, 0, { slot: 3, fd, op: layout.ops.writev, position: 100 });
      expect(ctx.submit(1, [parts])).toBe(1);
      expect(await next(1)).toEqual([{ slot: 3, res: 15 }]);
      setRequest(ctx, 0, { slot: 0, fd, op: layout.ops.fsync });
      setRequest(ctx, 1, { slot: 1, fd, op: layout.ops.fdatasync });
      ctx.submit(2, [undefined, undefined]);
      expect((await next(2)).map((c) => c.res)).toEqual([0, 0]);
      expect(readFileSync(file).subarray(100, 115).toString()).toBe('hello io_submit');
      const a = Buffer.alloc(6);
      const b = Buffer.alloc(9);
      setRequest(ctx, 0, { slot: 5, fd, op: layout.ops.readv, position: 100 });
      ctx.submit(1, [[a, b]]);
      expect(await next(1)).toEqual([{ slot: 5, res: 15 }]);
      expect(`${a.toString()}${b.toString()}`).toBe('hello io_submit');
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('fails only the request with a bad fd; the others are submitted', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next } = openContext(8);
    try {
      const buffers = [Buffer.alloc(512), Buffer.alloc(512), Buffer.alloc(512)];
      setRequest(ctx, 0, { slot: 0, fd, op: layout.ops.read });
      setRequest(ctx, 1, { slot: 1, fd: 100000, op: layout.ops.read });
      setRequest(ctx, 2, { slot: 2, fd, op: layout.ops.read, position: 512 });
      ctx.submit(3, buffers);
      expect(Array.from(ctx.status.subarray(0, 3))).toEqual([0, 9 /* EBADF */, 0]);
      expect((await next(2)).map((c) => c.slot).sort()).toEqual([0, 2]);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('reports misaligned direct requests without submitting them', () => {
    const { ctx } = openContext(4);
    try {
      setRequest(ctx, 0, { slot: 0, fd: 0, op: layout.ops.read, position: 100, align: 512 });
      setRequest(ctx, 1, { slot: 1, fd: 0, op: layout.ops.read, position: 0, align: 512 });
      expect(ctx.submit(2, [Buffer.alloc(512), Buffer.alloc(100)])).toBe(0);
      expect(Array.from(ctx.status.subarray(0, 2))).toEqual([layout.status.misaligned, layout.status.misaligned]);
      expect(ctx.inFlight).toBe(0);
    } finally {
      ctx.destroy();
    }
  });

  it('cancel: ENOENT for a slot not in flight; regular-file requests cannot be cancelled (EINVAL) and still complete', async () => {
    const fd = openSync(path, 'r');
    const { ctx, next } = openContext(4);
    try {
      expect(ctx.cancel(2)).toBe(2 /* ENOENT */);
      setRequest(ctx, 0, { slot: 1, fd, op: layout.ops.read });
      const buffer = Buffer.alloc(65536);
      ctx.submit(1, [buffer]);
      const result = ctx.inFlight > 0 ? ctx.cancel(1) : 2;
      expect([0, 22 /* EINVAL */, 2 /* ENOENT: already reaped */]).toContain(result);
      const [done] = await next(1);
      expect(done?.slot).toBe(1);
      expect(done?.res === 65536 || done?.res === -4 /* EINTR: cancelled */).toBe(true);
    } finally {
      ctx.destroy();
      closeSync(fd);
    }
  });

  it('reaps completions from the userspace ring', () => {
    const { ctx } = openContext(4);
    expect(ctx.usesRing).toBe(true);
    ctx.destroy();
  });

  it('io_setup EAGAIN names /proc/sys/fs/aio-max-nr and its current values', () => {
    const max = Number(readFileSync('/proc/sys/fs/aio-max-nr', 'utf8'));
    let caught: (Error & { code?: string; aioMaxNr?: number }) | undefined;
    try {
      new binding.IoSubmitContext(max + 1, () => {}).destroy();
    } catch (error) {
      caught = error as Error & { code?: string; aioMaxNr?: number };
    }
    expect(caught?.code).toBe('EAGAIN');
    expect(caught?.message).toContain(`raise /proc/sys/fs/aio-max-nr (now ${max}, in use `);
    expect(caught?.aioMaxNr).toBe(max);
  });

  it('rejects a bad maxInFlight with a RangeError naming it', () => {
    expect(() => new binding.IoSubmitContext(0, () => {})).toThrow(/maxInFlight must be in 1\.\.\d+; got 0/);
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
    expect(() => ctx.submit(0, [])).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_CLOSED' }));
  });
});
