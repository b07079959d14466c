import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FALLOCATE_MODES,
  FdBackend,
  fallocateModeBits,
  FsFdIo,
  runSpaceRequest,
  StatsRecorder,
  validateFallocateMode,
  validateLength,
  type FdIo,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-aio-space-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fallocate modes (pure logic)', () => {
  it('maps each name to the Linux bits (PUNCH_HOLE always with KEEP_SIZE)', () => {
    expect(FALLOCATE_MODES).toEqual(['allocate', 'keep-size', 'punch-hole', 'zero-range', 'zero-range-keep-size']);
    expect(FALLOCATE_MODES.map(fallocateModeBits)).toEqual([0, 0x01, 0x03, 0x10, 0x11]);
  });

  it('refuses anything else with ERR_INVALID_ARG_VALUE naming the value and the choices', () => {
    for (const bad of ['PUNCH_HOLE', '', 'toString', 3, undefined, null, {}]) {
      expect(() => validateFallocateMode(bad), String(bad)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("'punch-hole'") }),
      );
    }
    expect(() => validateFallocateMode('PUNCH_HOLE')).toThrow(expect.objectContaining({ message: expect.stringContaining('PUNCH_HOLE') }));
    expect(validateFallocateMode('zero-range')).toBe('zero-range');
  });

  it('a length is a position of at least 1', () => {
    expect(validateLength(1)).toBe(1);
    expect(validateLength(2n ** 63n - 1n)).toBe(2n ** 63n - 1n);
    for (const bad of [0, 0n, -1, 1.5, 2n ** 63n]) expect(() => validateLength(bad)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => validateLength('1')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('runSpaceRequest: an FdIo without the operations still has them (real files)', () => {
  /** An FdIo with only the required methods, as a third-party one written before these existed. */
  function minimalIo(): FdIo {
    const fs = new FsFdIo();
    return { name: 'minimal', readv: fs.readv.bind(fs), writev: fs.writev.bind(fs), fsync: fs.fsync.bind(fs), fdatasync: fs.fdatasync.bind(fs) };
  }

  it('falls back to the fs reference for fallocate, truncate and discard', async () => {
    const path = join(dir, 'fallback');
    writeFileSync(path, Buffer.alloc(32768, 6));
    const fd = openSync(path, 'r+');
    try {
      const io = minimalIo();
      await runSpaceRequest(io, fd, { op: 'fallocate', mode: 'punch-hole', offset: 0, length: 4096 }, undefined);
      await runSpaceRequest(io, fd, { op: 'discard', offset: 8192, length: 4096 }, undefined);
      await runSpaceRequest(io, fd, { op: 'fallocate', mode: 'allocate', offset: 32768, length: 4096 }, undefined);
      expect(statSync(path).size).toBe(36864);
      await runSpaceRequest(io, fd, { op: 'truncate', size: 16384 }, undefined);
      const data = readFileSync(path);
      expect(data.length).toBe(16384);
      expect(data.subarray(0, 4096).every((byte) => byte === 0)).toBe(true);
      expect(data.subarray(4096, 8192).every((byte) => byte === 6)).toBe(true);
      expect(data.subarray(8192, 12288).every((byte) => byte === 0)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it('an FdBackend over such an FdIo gives its files the three operations', async () => {
    const recorder = new StatsRecorder();
    const backend = new FdBackend({ name: 'minimal', capabilities: { direct: false, nowait: false, batch: false, cancel: false }, io: minimalIo(), recorder });
    try {
      const path = join(dir, 'backend');
      const file = await backend.open(path, 'w+');
      await file.fallocate('allocate', 0, 8192);
      expect((await file.stat()).size).toBe(8192);
      await file.truncate(100);
      await file.discard(0, 100);
      expect(readFileSync(path).equals(Buffer.alloc(100))).toBe(true);
      await file.close();
    } finally {
      await backend.close();
    }
  });

  it('the fs reference refuses a truncate size past 2^53 (node:fs takes a number)', async () => {
    const fd = openSync(join(dir, 'big'), 'w+');
    try {
      await expect(new FsFdIo().truncate(fd, 2n ** 60n)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    } finally {
      closeSync(fd);
    }
  });
});
