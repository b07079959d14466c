import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import type { AioFile } from '@vmlink/aio';
import { patternBytes } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

const OFFSETS: readonly (number | bigint)[] = [0, 1, 511, 4096, 65_537, 1_048_579, 5n * 2n ** 30n];

/** Opening, argument checks, round trips, EOF, vectored I/O, durability, stats. */
export function basicTests(ctx: AioSuiteContext): void {
  it('open of a missing file rejects with a Node-shaped ENOENT', async () => {
    const path = ctx.path('missing/nothing-here');
    await expect(ctx.backend().open(path, 'r')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open', path });
  });

  it('open rejects bad arguments with typed errors naming them', async () => {
    const backend = ctx.backend();
    await expect(backend.open(42 as unknown as string)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_TYPE',
      message: expect.stringContaining('42'),
    });
    await expect(backend.open(ctx.path('flags'), -1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(backend.open(ctx.path('flags'), {} as unknown as string)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('exposes fd, path, direct=false and alignment 1 for a buffered file', async () => {
    const path = ctx.path('props');
    const file = await ctx.backend().open(path, 'w+');
    try {
      expect(file.fd).toBeGreaterThanOrEqual(0);
      expect(file.path).toBe(path);
      expect(file.direct).toBe(false);
      expect(file.alignment).toEqual({ memory: 1, offset: 1, length: 1 });
      expect(file.closed).toBe(false);
    } finally {
      await file.close();
    }
  });

  it('rejects a non-Buffer with ERR_INVALID_ARG_TYPE and bad positions with ERR_OUT_OF_RANGE naming the value', async () => {
    await withFile(ctx, 'bad-input', async (file) => {
      const buf = Buffer.alloc(8);
      await expect(file.read('nope' as unknown as Buffer, 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('nope') });
      await expect(file.write([1, 2] as unknown as Buffer, 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      await expect(file.readv([buf, 'x' as unknown as Buffer], 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('buffers[1]') });
      await expect(file.writev([], 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      for (const position of [-1, 1.5, 2 ** 53, Number.NaN, -1n, 2n ** 63n]) {
        const shown = typeof position === 'bigint' ? `${position}n` : String(position);
        await expect(file.read(buf, position), `position ${shown}`).rejects.toMatchObject({
          code: 'ERR_OUT_OF_RANGE',
          message: expect.stringContaining(shown),
        });
        await expect(file.write(buf, position), `position ${shown}`).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      }
      await expect(file.read(buf, '0' as unknown as number)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      await expect(file.read(buf, 0, { signal: 'x' } as unknown as { signal: AbortSignal })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      // Nothing was written by the rejected calls.
      expect((await file.stat()).size).toBe(0);
    });
  });

  it('round-trips data at several offsets (number and bigint), matching node:fs', async () => {
    await withFile(ctx, 'round-trip', async (file) => {
      for (const [index, offset] of OFFSETS.entries()) {
        const data = patternBytes(3000 + index, index + 1);
        await expect(file.write(data, offset)).resolves.toBe(data.length);
        const back = Buffer.alloc(data.length);
        await expect(file.read(back, offset)).resolves.toBe(data.length);
        expect(back.equals(data)).toBe(true);
        expect(readWithNodeFs(file.path, data.length, offset).equals(data)).toBe(true);
      }
    });
  });

  it('short read at EOF, 0 past EOF (including a bigint position near 2^62)', async () => {
    const path = ctx.path('eof');
    writeFileSync(path, Buffer.from('0123456789'));
    const file = await ctx.backend().open(path, 'r');
    try {
      const buf = Buffer.alloc(20);
      await expect(file.read(buf, 5)).resolves.toBe(5);
      expect(buf.subarray(0, 5).toString()).toBe('56789');
      await expect(file.read(buf, 10)).resolves.toBe(0);
      await expect(file.read(buf, 1000)).resolves.toBe(0);
      await expect(file.read(buf, 2n ** 62n)).resolves.toBe(0);
      await expect(file.readv([Buffer.alloc(4), Buffer.alloc(4)], 6)).resolves.toBe(4);
    } finally {
      await file.close();
    }
  });

  it('writev gathers and readv scatters in order', async () => {
    await withFile(ctx, 'vectored', async (file) => {
      const parts = [patternBytes(100, 1), patternBytes(1, 2), patternBytes(5000, 3)];
      await expect(file.writev(parts, 7)).resolves.toBe(5101);
      const outs = [Buffer.alloc(3000), Buffer.alloc(2101)];
      await expect(file.readv(outs, 7)).resolves.toBe(5101);
      expect(Buffer.concat(outs).equals(Buffer.concat(parts))).toBe(true);
      expect(readFileSync(file.path).subarray(7).equals(Buffer.concat(parts))).toBe(true);
    });
  });

  it('fsync and fdatasync resolve and the data is visible through node:fs', async () => {
    await withFile(ctx, 'fsync', async (file) => {
      const data = patternBytes(8192, 9);
      await file.write(data, 0);
      await expect(file.fsync()).resolves.toBeUndefined();
      expect(readFileSync(file.path).equals(data)).toBe(true);
      await file.write(data.subarray(0, 100), 8192);
      await expect(file.fdatasync()).resolves.toBeUndefined();
      expect(readFileSync(file.path).length).toBe(8292);
      expect((await file.stat()).size).toBe(8292);
    });
  });

  it('a read on a write-only file fails with the kernel errno, naming syscall and path', async () => {
    const path = ctx.path('write-only');
    const file = await ctx.backend().open(path, 'w');
    try {
      await expect(file.read(Buffer.alloc(4), 0)).rejects.toMatchObject({ code: 'EBADF', syscall: expect.any(String), path });
    } finally {
      await file.close();
    }
  });

  it('stats count what happened and end with nothing in flight', async () => {
    const before = ctx.backend().stats();
    await withFile(ctx, 'stats', async (file) => {
      await file.write(Buffer.alloc(4096, 1), 0);
      await Promise.all([file.read(Buffer.alloc(512), 0), file.read(Buffer.alloc(512), 512), file.fdatasync()]);
      await file.read(Buffer.alloc(4), 0).catch(() => undefined);
    });
    const after = ctx.backend().stats();
    expect(after.submitted - before.submitted).toBeGreaterThanOrEqual(5);
    expect(after.completed - before.completed).toBeGreaterThanOrEqual(5);
    expect(after.inFlight).toBe(0);
    expect(after.submitted).toBe(after.completed + after.failed);
    expect(after.batchSize.count).toBeGreaterThan(before.batchSize.count);
    expect(after.serviceTimeUs.count).toBeGreaterThan(0);
    expect(after.serviceTimeUs.max).toBeGreaterThanOrEqual(after.serviceTimeUs.p50);
  });
}

/** Opens a fresh file 'w+' for `body` and always closes it. */
export async function withFile(ctx: AioSuiteContext, name: string, body: (file: AioFile) => Promise<void>): Promise<void> {
  const file = await ctx.backend().open(ctx.path(name), 'w+');
  try {
    await body(file);
  } finally {
    await file.close();
  }
}

/** `length` bytes at `position`, read with node:fs (independent of the backend under test). */
function readWithNodeFs(path: string, length: number, position: number | bigint): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, position));
  } finally {
    closeSync(fd);
  }
}
