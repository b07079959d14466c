import { fdatasyncSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { FALLOCATE_MODES, type AioBackend, type AioFile, type FallocateMode } from '@vmlink/aio';
import { livenessMs, patternBytes, randomInt, seededRandom } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

const TMPFS_MAGIC = 0x01021994;
const SHM = '/dev/shm';
const SIZE = 64 * 1024;
const SEED = 0x5ace;

/** What a file looks like after an operation: size, bytes, allocated 512-byte blocks. */
interface Shape {
  readonly size: number;
  readonly bytes: Buffer;
  readonly blocks: number;
}

function shapeOf(path: string): Shape {
  const stats = statSync(path);
  return { size: stats.size, bytes: readFileSync(path), blocks: stats.blocks };
}

/** A file of SIZE pattern bytes, synced so its blocks are really allocated (st_blocks counts them). */
function writtenFile(path: string, seed = 7): Buffer {
  const data = patternBytes(SIZE, seed);
  writeFileSync(path, data);
  const fd = openSync(path, 'r+');
  fdatasyncSync(fd);
  closeSync(fd);
  return data;
}

/** Runs `op` and returns the error code it failed with, or 'ok'. */
async function outcome(op: Promise<unknown>): Promise<string> {
  try {
    await op;
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/** Whether `dir` is a tmpfs. */
function isTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * fallocate / truncate / discard: argument checks, what each mode does to the bytes, the
 * size and the allocated blocks, the fs reference as the judge of what the file system
 * supports (same outcome, same bytes), a real tmpfs (/dev/shm: punch-hole yes, zero-range
 * EOPNOTSUPP), and a seeded sequence mixing them with writes, byte-identical to the reference.
 */
export function spaceTests(ctx: AioSuiteContext): void {
  /** Opens `path` on `backend` (default: the one under test), runs `run`, closes it. */
  async function withFile<T>(path: string, run: (file: AioFile) => Promise<T>, backend: AioBackend = ctx.backend()): Promise<T> {
    const file = await backend.open(path, 'r+');
    try {
      return await run(file);
    } finally {
      await file.close();
    }
  }

  it('bad modes, offsets, lengths and sizes are typed errors naming the value; nothing changes', async () => {
    const path = ctx.path('space-bad-input');
    writeFileSync(path, 'keep me');
    const file = await ctx.backend().open(path, 'r+');
    try {
      await expect(file.fallocate('shrink' as FallocateMode, 0, 1)).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG_VALUE',
        message: expect.stringContaining('shrink'),
      });
      await expect(file.fallocate(2 as unknown as FallocateMode, 0, 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      await expect(file.fallocate('allocate', -1, 1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"offset"') });
      await expect(file.fallocate('allocate', 0, 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"length"') });
      await expect(file.discard(0, 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(file.discard('0' as unknown as number, 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      await expect(file.truncate(-5)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('-5') });
      await expect(file.truncate(1.5)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(file.truncate(0, { signal: 'x' } as unknown as { signal: AbortSignal })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(readFileSync(path, 'utf8')).toBe('keep me');
    } finally {
      await file.close();
    }
  });

  it('truncate cuts and extends (the extension reads as zeros), like the fs reference', async () => {
    const path = ctx.path('truncate');
    const data = writtenFile(path);
    const file = await ctx.backend().open(path, 'r+');
    try {
      await file.truncate(1000);
      expect((await file.stat()).size).toBe(1000);
      await file.truncate(5000n);
      const after = readFileSync(path);
      expect(after.length).toBe(5000);
      expect(after.subarray(0, 1000).equals(data.subarray(0, 1000))).toBe(true);
      expect(after.subarray(1000).every((byte) => byte === 0)).toBe(true);
      const back = Buffer.alloc(10);
      await expect(file.read(back, 4995)).resolves.toBe(5);
      await file.truncate(0);
      expect(statSync(path).size).toBe(0);
    } finally {
      await file.close();
    }
  });

  it('truncate on a read-only file fails like ftruncate (EINVAL or EBADF) with the path', async () => {
    const path = ctx.path('truncate-ro');
    writeFileSync(path, 'abc');
    const file = await ctx.backend().open(path, 'r');
    try {
      const error = (await file.truncate(1).then(() => new Error('resolved'), (reason: unknown) => reason)) as { code?: string; path?: string; syscall?: string };
      expect(['EINVAL', 'EBADF']).toContain(error.code);
      expect(error).toMatchObject({ path });
      expect(readFileSync(path, 'utf8')).toBe('abc');
    } finally {
      await file.close();
    }
  });

  for (const mode of FALLOCATE_MODES) {
    it(`fallocate '${mode}' gives the fs reference's outcome, bytes and size (in the middle and past EOF)`, async () => {
      for (const [where, offset, length] of [
        ['middle', 4096, 8192],
        ['past EOF', SIZE - 4096, 16384],
      ] as const) {
        const subjectPath = ctx.path(`fallocate-${mode}-${where.replace(' ', '-')}`);
        const referencePath = ctx.path(`fallocate-${mode}-${where.replace(' ', '-')}-reference`);
        writtenFile(subjectPath);
        writtenFile(referencePath);
        const before = shapeOf(subjectPath);
        const subjectOutcome = await withFile(subjectPath, (file) => outcome(file.fallocate(mode, offset, length)));
        const referenceOutcome = await withFile(referencePath, (file) => outcome(file.fallocate(mode, offset, length)), ctx.reference());
        expect(subjectOutcome, `${mode} ${where}`).toBe(referenceOutcome);
        const after = shapeOf(subjectPath);
        const expected = shapeOf(referencePath);
        expect(after.size, `${mode} ${where} size`).toBe(expected.size);
        expect(after.bytes.equals(expected.bytes), `${mode} ${where} bytes`).toBe(true);
        if (subjectOutcome !== 'ok') {
          expect(subjectOutcome).toBe('EOPNOTSUPP');
          expect(after.bytes.equals(before.bytes)).toBe(true);
          continue;
        }
        const end = offset + length;
        const grows = mode === 'allocate' || mode === 'zero-range';
        expect(after.size).toBe(grows ? Math.max(SIZE, end) : SIZE);
        const zeroed = mode === 'punch-hole' || mode.startsWith('zero-range');
        const range = after.bytes.subarray(offset, Math.min(end, after.size));
        if (zeroed) expect(range.every((byte) => byte === 0), `${mode} ${where} zeros`).toBe(true);
        else {
          // Allocating keeps the data; what it adds past the old end reads as zeros.
          const kept = Math.min(end, SIZE) - offset;
          expect(range.subarray(0, kept).equals(before.bytes.subarray(offset, offset + kept)), `${mode} ${where} data kept`).toBe(true);
          expect(range.subarray(kept).every((byte) => byte === 0)).toBe(true);
        }
        // Outside the range nothing moved.
        expect(after.bytes.subarray(0, offset).equals(before.bytes.subarray(0, offset))).toBe(true);
        if (end < SIZE) expect(after.bytes.subarray(end, SIZE).equals(before.bytes.subarray(end, SIZE))).toBe(true);
        // Blocks: a punched hole frees them; allocating past EOF adds them.
        if (mode === 'punch-hole' && where === 'middle') expect(after.blocks).toBeLessThan(before.blocks);
        if ((mode === 'allocate' || mode === 'keep-size') && where === 'past EOF') expect(after.blocks).toBeGreaterThan(before.blocks);
      }
    });
  }

  it('discard on a file punches a hole: zeros, same size, fewer blocks', async () => {
    const path = ctx.path('discard');
    const data = writtenFile(path);
    const before = shapeOf(path);
    await withFile(path, (file) => file.discard(8192, 16384n));
    const after = shapeOf(path);
    expect(after.size).toBe(SIZE);
    expect(after.bytes.subarray(8192, 24576).every((byte) => byte === 0)).toBe(true);
    expect(after.bytes.subarray(0, 8192).equals(data.subarray(0, 8192))).toBe(true);
    expect(after.bytes.subarray(24576).equals(data.subarray(24576))).toBe(true);
    expect(after.blocks).toBeLessThan(before.blocks);
  });

  it('fallocate/truncate/discard go through submit() in one batch, each with its own result', async () => {
    const path = ctx.path('space-submit');
    writtenFile(path);
    const backend = ctx.backend();
    const file = await backend.open(path, 'r+');
    try {
      const results = await backend.submit([
        { op: 'discard', file, offset: 0, length: 4096 },
        { op: 'fallocate', file, mode: 'keep-size', offset: SIZE, length: 4096 },
        { op: 'fallocate', file, mode: 'nope' as FallocateMode, offset: 0, length: 1 },
      ]);
      expect(results[0]).toEqual({ status: 'fulfilled', value: 0 });
      expect(results[1]).toEqual({ status: 'fulfilled', value: 0 });
      expect(results[2]).toMatchObject({ status: 'rejected', reason: { code: 'ERR_INVALID_ARG_VALUE' } });
      const [truncated] = await backend.submit([{ op: 'truncate', file, size: 10 }]);
      expect(truncated).toEqual({ status: 'fulfilled', value: 0 });
      expect(readFileSync(path).equals(Buffer.alloc(10))).toBe(true);
    } finally {
      await file.close();
    }
  });

  it('abort before start rejects with AbortError and changes nothing; after close they are EBADF', async () => {
    const path = ctx.path('space-abort');
    const data = writtenFile(path);
    const file = await ctx.backend().open(path, 'r+');
    const signal = AbortSignal.abort();
    await expect(file.fallocate('punch-hole', 0, 4096, { signal })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(file.truncate(0, { signal })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(file.discard(0, 4096, { signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(readFileSync(path).equals(data)).toBe(true);
    await file.close();
    await expect(file.fallocate('allocate', 0, 1)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(file.truncate(0)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(file.discard(0, 1)).rejects.toMatchObject({ code: 'EBADF' });
  });

  describe('on a tmpfs (/dev/shm)', () => {
    let dir: string | undefined;
    let unavailable: string | undefined;
    beforeAll(() => {
      if (!isTmpfs(SHM)) {
        unavailable = `${SHM} is not a tmpfs here`;
        return;
      }
      dir = mkdtempSync(join(SHM, 'vmlink-space-'));
    });
    afterAll(() => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });
    function requireDir(test: TestContext): string {
      if (dir === undefined) test.skip(unavailable ?? 'no tmpfs');
      return dir!;
    }

    it('punch-hole, keep-size and allocate work; zero-range is EOPNOTSUPP with code, syscall and path', async (test) => {
      const shm = requireDir(test);
      const path = join(shm, 'modes');
      const data = patternBytes(SIZE, 3);
      writeFileSync(path, data);
      await withFile(path, async (file) => {
        await file.fallocate('punch-hole', 4096, 4096);
        await file.fallocate('keep-size', SIZE, 8192);
        expect((await file.stat()).size).toBe(SIZE);
        await file.fallocate('allocate', SIZE, 8192);
        expect((await file.stat()).size).toBe(SIZE + 8192);
        await file.discard(12288, 4096);
        for (const mode of ['zero-range', 'zero-range-keep-size'] as const) {
          await expect(file.fallocate(mode, 0, 4096), mode).rejects.toMatchObject({ code: 'EOPNOTSUPP', syscall: 'fallocate', path });
        }
      });
      const after = readFileSync(path);
      expect(after.subarray(4096, 8192).every((byte) => byte === 0)).toBe(true);
      expect(after.subarray(12288, 16384).every((byte) => byte === 0)).toBe(true);
      expect(after.subarray(0, 4096).equals(data.subarray(0, 4096))).toBe(true);
      expect(after.subarray(16384, SIZE).equals(data.subarray(16384))).toBe(true);
      expect(after.subarray(SIZE).every((byte) => byte === 0)).toBe(true);
    });
  });

  it('a seeded sequence of writes, reads, fallocate, truncate and discard is byte-identical to the fs reference', async () => {
    const random = seededRandom(SEED);
    const ops: ((file: AioFile) => Promise<string>)[] = [];
    for (let i = 0; i < 200; i++) {
      const roll = random();
      const offset = randomInt(random, 0, 256) * 512 + (random() < 0.3 ? randomInt(random, 1, 511) : 0);
      const length = randomInt(random, 1, 32) * 512 + (random() < 0.3 ? randomInt(random, 1, 511) : 0);
      if (roll < 0.35) {
        const seed = i + 1;
        ops.push(async (file) => `write ${offset} ${await file.write(patternBytes(length, seed), offset)}`);
      } else if (roll < 0.6) {
        ops.push(async (file) => {
          const buffer = Buffer.alloc(length);
          const n = await file.read(buffer, offset);
          return `read ${offset} ${n} ${buffer.subarray(0, n).toString('base64')}`;
        });
      } else if (roll < 0.85) {
        const mode = FALLOCATE_MODES[randomInt(random, 0, FALLOCATE_MODES.length - 1)]!;
        ops.push(async (file) => `fallocate ${mode} ${offset} ${length} ${await outcome(file.fallocate(mode, offset, length))}`);
      } else if (roll < 0.93) {
        ops.push(async (file) => `discard ${offset} ${length} ${await outcome(file.discard(offset, length))}`);
      } else {
        const size = randomInt(random, 0, 300) * 512 + randomInt(random, 0, 511);
        ops.push(async (file) => `truncate ${size} ${await outcome(file.truncate(size))}`);
      }
    }
    const run = async (backend: AioBackend, name: string): Promise<{ log: string[]; bytes: Buffer }> => {
      const file = await backend.open(ctx.path(name), 'w+');
      try {
        const log: string[] = [];
        for (const op of ops) log.push(await op(file));
        return { log, bytes: readFileSync(file.path) };
      } finally {
        await file.close();
      }
    };
    const subject = await run(ctx.backend(), 'space-random');
    const reference = await run(ctx.reference(), 'space-random-reference');
    subject.log.forEach((entry, i) => expect(entry, `op ${i}`).toBe(reference.log[i]));
    expect(subject.bytes.length).toBe(reference.bytes.length);
    expect(subject.bytes.equals(reference.bytes)).toBe(true);
  }, livenessMs(ctx.setup, 60_000));
}
