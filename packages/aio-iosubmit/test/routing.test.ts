import { constants, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocAligned, O_DIRECT, type AioStats } from '@vmlink/aio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIoSubmitBackend, type IoSubmitBackend } from '../src/index.js';
import { PROBE_WRITES } from '../src/write-nowait.js';
import { scratchDir, writeRandomFile } from './helpers.js';

const DIRECT_RW = constants.O_RDWR | O_DIRECT;

/** Kernel submissions (io_submit calls) and guard decisions between two snapshots. */
function delta(before: AioStats, after: AioStats): { ioSubmitCalls: number; routed: number; nowaitFallbacks: number; alignmentRejections: number } {
  return {
    ioSubmitCalls: after.batchSize.count - before.batchSize.count,
    routed: after.guardRouted - before.guardRouted,
    nowaitFallbacks: after.nowaitFallbacks - before.nowaitFallbacks,
    alignmentRejections: after.alignmentRejections - before.alignmentRejections,
  };
}

describe('blocking guard on real files (guarded backend)', () => {
  const scratch = scratchDir();
  let backend: IoSubmitBackend;

  beforeAll(async () => {
    backend = await createIoSubmitBackend();
  });
  afterAll(async () => {
    await backend.close();
    scratch.remove();
  });

  it('routes writes to a buffered file to the fallback', async () => {
    const path = join(scratch.dir, 'buffered.bin');
    writeRandomFile(path, 64 * 1024);
    const file = await backend.open(path, 'r+');
    const before = backend.stats();
    expect(await file.write(Buffer.from('buffered'), 10)).toBe(8);
    const d = delta(before, backend.stats());
    expect(d).toMatchObject({ routed: 1, ioSubmitCalls: 0 });
    await file.close();
    expect(readFileSync(path).subarray(10, 18).toString()).toBe('buffered');
  });

  it('sends an aligned O_DIRECT overwrite of an allocated file to io_submit', async () => {
    const path = join(scratch.dir, 'allocated.bin');
    writeRandomFile(path, 256 * 1024);
    const file = await backend.open(path, DIRECT_RW);
    expect(file.direct).toBe(true);
    const block = allocAligned(8192, file.alignment.memory).fill(0x5a);
    const before = backend.stats();
    expect(await file.write(block, 16384)).toBe(8192);
    const d = delta(before, backend.stats());
    expect(d.routed).toBe(0);
    expect(d.ioSubmitCalls).toBeGreaterThanOrEqual(1);
    await file.close();
    expect(readFileSync(path).subarray(16384, 16384 + 8192).every((b) => b === 0x5a)).toBe(true);
  });

  it('routes an O_DIRECT append (a write that extends the file), then tracks the new size', async () => {
    const path = join(scratch.dir, 'append.bin');
    writeRandomFile(path, 64 * 1024);
    const file = await backend.open(path, DIRECT_RW);
    const block = allocAligned(4096).fill(1);
    let before = backend.stats();
    expect(await file.write(block, 64 * 1024)).toBe(4096);
    expect(delta(before, backend.stats()).routed).toBe(1);
    expect(statSync(path).size).toBe(68 * 1024);
    // The tracked size grew: overwriting the appended block now stays in the kernel.
    before = backend.stats();
    expect(await file.write(block.fill(2), 64 * 1024)).toBe(4096);
    expect(delta(before, backend.stats()).routed).toBe(0);
    await file.close();
    expect(readFileSync(path)[64 * 1024]).toBe(2);
  });

  it('routes writes to a sparse file', async () => {
    const path = join(scratch.dir, 'sparse.bin');
    writeFileSync(path, '');
    truncateSync(path, 1 << 20);
    const file = await backend.open(path, DIRECT_RW);
    const before = backend.stats();
    expect(await file.write(allocAligned(4096).fill(3), 512 * 1024)).toBe(4096);
    expect(delta(before, backend.stats())).toMatchObject({ routed: 1, ioSubmitCalls: 0 });
    await file.close();
    expect(readFileSync(path)[512 * 1024]).toBe(3);
  });

  it('routes writes on a file opened with O_APPEND', async () => {
    const path = join(scratch.dir, 'o_append.bin');
    writeRandomFile(path, 8192);
    const file = await backend.open(path, constants.O_WRONLY | constants.O_APPEND | O_DIRECT);
    const before = backend.stats();
    expect(await file.write(allocAligned(4096).fill(4), 0)).toBe(4096);
    expect(delta(before, backend.stats()).routed).toBe(1);
    await file.close();
    expect(statSync(path).size).toBe(12288);
  });

  it('routes a misaligned O_DIRECT request through a buffered twin of the file', async () => {
    const path = join(scratch.dir, 'misaligned.bin');
    const data = writeRandomFile(path, 64 * 1024);
    const file = await backend.open(path, DIRECT_RW);
    const before = backend.stats();
    const small = Buffer.alloc(100);
    expect(await file.read(small, 3)).toBe(100);
    expect(small.equals(data.subarray(3, 103))).toBe(true);
    expect(await file.write(Buffer.from('unaligned'), 1001)).toBe(9);
    expect(delta(before, backend.stats())).toMatchObject({ routed: 2, alignmentRejections: 2 });
    // Direct reads see what the buffered twin wrote.
    const block = allocAligned(4096);
    expect(await file.read(block, 0)).toBe(4096);
    expect(block.subarray(1001, 1010).toString()).toBe('unaligned');
    await file.close();
  });

  it('routes a misaligned O_DIRECT append through the buffered twin', async () => {
    const path = join(scratch.dir, 'misaligned-append.bin');
    writeRandomFile(path, 4096);
    const file = await backend.open(path, DIRECT_RW);
    const before = backend.stats();
    expect(await file.write(Buffer.from('tail'), 4096)).toBe(4);
    expect(delta(before, backend.stats())).toMatchObject({ routed: 1, alignmentRejections: 1, ioSubmitCalls: 0 });
    await file.close();
    expect(readFileSync(path).subarray(4096).toString()).toBe('tail');
  });

  it(`probes write NOWAIT per file system and settles within ${PROBE_WRITES} writes`, async () => {
    const path = join(scratch.dir, 'probe.bin');
    writeRandomFile(path, 256 * 1024);
    const file = await backend.open(path, DIRECT_RW);
    const dev = statSync(path).dev;
    const block = allocAligned(4096);
    for (let i = 0; i < PROBE_WRITES; i++) await file.write(block.fill(i), i * 4096);
    const mode = backend.writeNowaitModes().get(dev);
    expect(mode === 'on' || mode === 'off').toBe(true);
    // Once settled, 'off' means no further write pays an EAGAIN round trip; 'on' means NOWAIT writes succeed.
    const before = backend.stats();
    for (let i = 0; i < PROBE_WRITES; i++) await file.write(block.fill(0x40 + i), i * 4096);
    const d = delta(before, backend.stats());
    expect(d.routed).toBe(0);
    if (mode === 'off') expect(d.nowaitFallbacks).toBe(0);
    await file.close();
    const bytes = readFileSync(path);
    for (let i = 0; i < PROBE_WRITES; i++) expect(bytes[i * 4096]).toBe(0x40 + i);
  });
});

describe('strict backend (guard off)', () => {
  const scratch = scratchDir();
  let backend: IoSubmitBackend;

  beforeAll(async () => {
    backend = await createIoSubmitBackend({ strict: true });
  });
  afterAll(async () => {
    await backend.close();
    scratch.remove();
  });

  it('declares no NOWAIT and rejects misaligned direct requests', () => {
    expect(backend.capabilities).toMatchObject({ direct: true, nowait: false, batch: true, misalignedDirect: 'reject' });
    expect(backend.fallback).toBeUndefined();
  });

  it('fails a misaligned O_DIRECT request with EINVAL naming the required alignment', async () => {
    const path = join(scratch.dir, 'strict.bin');
    writeRandomFile(path, 64 * 1024);
    const file = await backend.open(path, DIRECT_RW);
    const { offset, length } = file.alignment;
    await expect(file.read(allocAligned(4096), 100)).rejects.toMatchObject({
      code: 'EINVAL',
      syscall: 'read',
      message: expect.stringContaining(`multiple of ${offset}`),
    });
    await expect(file.write(allocAligned(length + 1), 0)).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining(`not a multiple of ${length}`),
    });
    expect(backend.stats().alignmentRejections).toBe(2);
    await file.close();
  });

  it('sends appends and buffered writes to io_submit (where they block: that is what strict measures)', async () => {
    const path = join(scratch.dir, 'strict-append.bin');
    writeRandomFile(path, 4096);
    const file = await backend.open(path, DIRECT_RW);
    const before = backend.stats();
    expect(await file.write(allocAligned(4096).fill(9), 4096)).toBe(4096);
    const buffered = await backend.open(path, 'r+');
    expect(await buffered.write(Buffer.from('xy'), 1)).toBe(2);
    expect(delta(before, backend.stats())).toMatchObject({ routed: 0, ioSubmitCalls: 2 });
    await Promise.all([file.close(), buffered.close()]);
    expect(statSync(path).size).toBe(8192);
  });
});
