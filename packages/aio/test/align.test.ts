import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBinding } from '@vmlink/native';
import { afterAll, describe, expect, it } from 'vitest';
import { alignmentOf, allocAligned, isAligned, misalignment, O_DIRECT } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-aio-align-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('allocAligned', () => {
  it.each([1, 512, 4096, 65536])('returns zeroed buffers whose address is a multiple of %i', (alignment) => {
    for (const size of [0, 1, 100, 4096, 1 << 20]) {
      const buffer = allocAligned(size, alignment);
      expect(buffer.length).toBe(size);
      expect(isAligned(buffer, alignment)).toBe(true);
      expect(buffer.every((byte) => byte === 0)).toBe(true);
    }
  });

  it('defaults to 4096', () => {
    expect(isAligned(allocAligned(10), 4096)).toBe(true);
  });

  it('rejects bad sizes and non-power-of-two alignments naming them', () => {
    expect(() => allocAligned(-1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('-1') }));
    expect(() => allocAligned(10, 3000)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('3000') }));
    expect(() => allocAligned('4' as unknown as number)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('the addon sees a +1 sub-array as misaligned', () => {
    const buffer = allocAligned(8192, 4096);
    expect(isAligned(buffer.subarray(1), 2)).toBe(false);
    expect(isAligned(buffer.subarray(512), 512)).toBe(true);
    expect(isAligned(buffer.subarray(512), 4096)).toBe(false);
  });
});

describe('O_DIRECT alignment', () => {
  const path = join(dir, 'file');
  writeFileSync(path, Buffer.alloc(8192));

  it('is { 1, 1, 1 } for a buffered file', () => {
    const fd = openSync(path, 'r');
    try {
      expect(alignmentOf(fd, false)).toEqual({ memory: 1, offset: 1, length: 1 });
    } finally {
      closeSync(fd);
    }
  });

  it('statx and the sysfs fallback agree on a direct file; EBADF for a closed fd', () => {
    const fd = openSync(path, constants.O_RDONLY | O_DIRECT);
    try {
      const binding = loadBinding();
      const statx = binding.dioAlignment(fd, 'statx');
      const sysfs = binding.dioAlignment(fd, 'sysfs');
      expect(statx.source).toBe('statx');
      expect(sysfs.source).toBe('sysfs');
      expect(sysfs.offset).toBe(statx.offset);
      expect(alignmentOf(fd, true)).toEqual({ memory: statx.memory, offset: statx.offset, length: statx.length });
      expect(() => binding.dioAlignment(fd, 'nope' as 'auto')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    } finally {
      closeSync(fd);
    }
    expect(() => loadBinding().dioAlignment(fd)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'statx' }));
  });

  it('misalignment() names the broken rule', () => {
    const alignment = { memory: 512, offset: 512, length: 512 };
    const good = allocAligned(1024, 512);
    expect(misalignment(alignment, [good], 512)).toBeUndefined();
    expect(misalignment(alignment, [good], 100)).toContain('position 100');
    expect(misalignment(alignment, [good.subarray(0, 100)], 0)).toContain('length 100');
    expect(misalignment(alignment, [good.subarray(8, 520)], 0)).toContain('address');
    expect(misalignment(alignment, [good], 2n ** 40n + 1n)).toContain('multiple of 512');
  });
});
