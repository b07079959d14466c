import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { createFsBackend, type AioBackend, type FallocateMode } from '@vmlink/aio';
import { createThreadPoolBackend, createThreadPoolIo } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-threadpool-space-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TMPFS_MAGIC = 0x01021994;

function syncedFile(path: string, size: number, fill: number): void {
  writeFileSync(path, Buffer.alloc(size, fill));
  const fd = openSync(path, 'r+');
  fdatasyncSync(fd);
  closeSync(fd);
}

describe('ThreadPoolIo fallocate / truncate / discard on raw fds', () => {
  it('does each on a worker, with errno-named errors and typed argument errors', async () => {
    const path = join(dir, 'raw');
    syncedFile(path, 65536, 4);
    const fd = openSync(path, 'r+');
    const io = createThreadPoolIo({ threads: 2 });
    try {
      const before = statSync(path).blocks;
      await io.fallocate(fd, 'punch-hole', 4096, 8192);
      expect(statSync(path).blocks).toBeLessThan(before);
      await io.fallocate(fd, 'keep-size', 65536, 65536n);
      expect(statSync(path).size).toBe(65536);
      await io.fallocate(fd, 'zero-range', 60000, 10000);
      expect(statSync(path).size).toBe(70000);
      await io.discard(fd, 16384, 4096);
      await io.truncate(fd, 50000n);
      const data = readFileSync(path);
      expect(data.length).toBe(50000);
      expect(data.subarray(4096, 12288).every((byte) => byte === 0)).toBe(true);
      expect(data.subarray(16384, 20480).every((byte) => byte === 0)).toBe(true);
      expect(data.subarray(12288, 16384).every((byte) => byte === 4)).toBe(true);
      await expect(io.fallocate(fd, 'grow' as FallocateMode, 0, 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('grow') });
      await expect(io.fallocate(fd, 'allocate', 0, 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(io.discard(fd, -1, 1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"offset"') });
      await expect(io.truncate(fd, -1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"size"') });
      await expect(io.fallocate(1 << 20, 'allocate', 0, 1)).rejects.toMatchObject({ code: 'EBADF', syscall: 'fallocate' });
      await expect(io.truncate(1 << 20, 0)).rejects.toMatchObject({ code: 'EBADF', syscall: 'ftruncate' });
      await expect(io.discard(1 << 20, 0, 1)).rejects.toMatchObject({ code: 'EBADF', syscall: 'fallocate' });
      // A position past what the kernel takes: EFBIG from the worker, not a crash.
      await expect(io.fallocate(fd, 'allocate', 2n ** 63n - 1n, 10)).rejects.toMatchObject({ code: 'EFBIG' });
    } finally {
      await io.close();
      closeSync(fd);
    }
  });

  it('on a tmpfs (/dev/shm): punch-hole works, zero-range is EOPNOTSUPP', async (test) => {
    let isTmpfs = false;
    try {
      isTmpfs = statfsSync('/dev/shm').type === TMPFS_MAGIC;
    } catch {
      // not there
    }
    if (!isTmpfs) test.skip('/dev/shm is not a tmpfs here');
    const shm = mkdtempSync('/dev/shm/vmlink-threadpool-');
    const io = createThreadPoolIo({ threads: 1 });
    try {
      const path = join(shm, 'f');
      writeFileSync(path, Buffer.alloc(16384, 1));
      const fd = openSync(path, 'r+');
      try {
        await io.fallocate(fd, 'punch-hole', 0, 4096);
        await expect(io.fallocate(fd, 'zero-range', 0, 4096)).rejects.toMatchObject({ code: 'EOPNOTSUPP', errno: -95, syscall: 'fallocate' });
        expect(readFileSync(path).subarray(0, 4096).every((byte) => byte === 0)).toBe(true);
      } finally {
        closeSync(fd);
      }
    } finally {
      await io.close();
      rmSync(shm, { recursive: true, force: true });
    }
  });
});

// A loop device over a file (needs root and losetup); skipped, with the reason, when unavailable.
describe('discard on a block device (loop device over a file on this disk)', () => {
  const backing = join(dir, 'loop-backing');
  const size = 8 << 20;
  let device: string | undefined;
  let unavailable: string | undefined;

  beforeAll(() => {
    if (process.getuid?.() !== 0) {
      unavailable = 'a loop device needs root';
      return;
    }
    syncedFile(backing, size, 0x5a);
    try {
      device = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (error) {
      unavailable = `losetup failed: ${String((error as { stderr?: string }).stderr ?? error).trim()}`;
    }
  });

  afterAll(() => {
    if (device !== undefined) execFileSync('losetup', ['--detach', device]);
  });

  function requireDevice(test: TestContext): string {
    if (device === undefined) test.skip(unavailable ?? 'no loop device');
    return device!;
  }

  for (const [name, make] of [
    ['threadpool', () => createThreadPoolBackend({ threads: 2 })],
    ['fs reference', () => createFsBackend()],
  ] as const) {
    it(`${name}: BLKDISCARD frees the backing file's blocks and the range reads as zeros; misaligned is EINVAL from ioctl`, async (test) => {
      const loop = requireDevice(test);
      const backend: AioBackend = make();
      try {
        const file = await backend.open(loop, 'r+');
        try {
          // Data back in place (the previous backend's discard made a hole).
          await file.write(Buffer.alloc(1 << 20, 0x5a), 1 << 20);
          await file.fsync();
          const before = statSync(backing).blocks;
          await file.discard(1 << 20, 1 << 20);
          await file.fsync();
          const back = Buffer.alloc(1 << 20, 1);
          await expect(file.read(back, 1 << 20)).resolves.toBe(1 << 20);
          expect(back.every((byte) => byte === 0)).toBe(true);
          expect(statSync(backing).blocks).toBeLessThan(before);
          const edge = Buffer.alloc(4096);
          await expect(file.read(edge, (2 << 20) + 4096)).resolves.toBe(4096);
          expect(edge.every((byte) => byte === 0x5a)).toBe(true);
          await expect(file.discard(100, 512)).rejects.toMatchObject({ code: 'EINVAL', syscall: 'ioctl', path: loop });
        } finally {
          await file.close();
        }
      } finally {
        await backend.close();
      }
    }, 60_000);
  }
});
