import { constants, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { allocAligned, O_DIRECT, type AioStats } from '@vmlink/aio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIoSubmitBackend, type IoSubmitBackend, type IoSubmitFile } from '../src/index.js';
import { scratchDir, writeRandomFile } from './helpers.js';

const DIRECT_RW = constants.O_RDWR | O_DIRECT;

function routedSince(before: AioStats, after: AioStats): number {
  return after.guardRouted - before.guardRouted;
}

// io_submit has no fallocate: these go to the fallback, and the guard learns what changed.
describe.each([false, true])('fallocate / truncate / discard on a real ext4 file (strict: %s)', (strict) => {
  const scratch = scratchDir();
  let backend: IoSubmitBackend;

  beforeAll(async () => {
    backend = await createIoSubmitBackend({ strict });
  });
  afterAll(async () => {
    await backend.close();
    scratch.remove();
  });

  it('truncate cuts and extends; the guard sees the new size and the hole', async () => {
    const path = join(scratch.dir, 'truncate.bin');
    const data = writeRandomFile(path, 64 * 1024);
    const file = (await backend.open(path, DIRECT_RW)) as IoSubmitFile;
    await file.truncate(32 * 1024);
    expect(statSync(path).size).toBe(32 * 1024);
    expect(file.facts).toMatchObject({ size: 32 * 1024, sparse: false });
    await file.truncate(1 << 20);
    expect(statSync(path).size).toBe(1 << 20);
    expect(file.facts).toMatchObject({ size: 1 << 20, sparse: true });
    const bytes = readFileSync(path);
    expect(bytes.subarray(0, 32 * 1024).equals(data.subarray(0, 32 * 1024))).toBe(true);
    expect(bytes.subarray(32 * 1024).every((b) => b === 0)).toBe(true);
    await file.close();
  });

  it('discard (punch-hole) zeroes a range; a write into the hole then goes where the guard sends holes', async () => {
    const path = join(scratch.dir, 'discard.bin');
    const data = writeRandomFile(path, 256 * 1024);
    const file = (await backend.open(path, DIRECT_RW)) as IoSubmitFile;
    expect(file.facts.sparse).toBe(false);
    await file.discard(64 * 1024, 64 * 1024);
    expect(statSync(path).size).toBe(256 * 1024);
    expect(file.facts.sparse).toBe(true);
    const bytes = readFileSync(path);
    expect(bytes.subarray(64 * 1024, 128 * 1024).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(128 * 1024).equals(data.subarray(128 * 1024))).toBe(true);

    const block = allocAligned(4096, file.alignment.memory).fill(0x77);
    const before = backend.stats();
    expect(await file.write(block, 64 * 1024)).toBe(4096);
    // Guarded: a write that may allocate blocks goes to the pool; strict: to io_submit.
    expect(routedSince(before, backend.stats())).toBe(strict ? 0 : 1);
    expect(readFileSync(path).subarray(64 * 1024, 68 * 1024).every((b) => b === 0x77)).toBe(true);
    await file.close();
  });

  it('fallocate allocate extends the size; keep-size does not; zero-range zeroes', async () => {
    const path = join(scratch.dir, 'fallocate.bin');
    const data = writeRandomFile(path, 64 * 1024);
    const file = (await backend.open(path, DIRECT_RW)) as IoSubmitFile;
    await file.fallocate('allocate', 64 * 1024, 64 * 1024);
    expect(statSync(path).size).toBe(128 * 1024);
    expect(file.facts.size).toBe(128 * 1024);
    await file.fallocate('keep-size', 128 * 1024, 64 * 1024);
    expect(statSync(path).size).toBe(128 * 1024);
    await file.fallocate('zero-range', 0, 4096);
    const bytes = readFileSync(path);
    expect(bytes.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(4096, 64 * 1024).equals(data.subarray(4096, 64 * 1024))).toBe(true);
    await file.close();
  });

  it('bad arguments are typed errors; after close, EBADF', async () => {
    const path = join(scratch.dir, 'bad.bin');
    writeRandomFile(path, 4096);
    const file = await backend.open(path, 'r+');
    await expect(file.fallocate('sideways' as 'allocate', 0, 10)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('sideways') });
    await expect(file.truncate(-1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(file.discard(0, 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await file.close();
    await expect(file.truncate(0)).rejects.toMatchObject({ code: 'EBADF' });
  });
});
