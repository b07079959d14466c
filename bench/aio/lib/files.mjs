// Bench data files: real random bytes (not fallocated: unwritten extents read as zeros
// without I/O and make benchmarks lie), synced, with helpers to drop them from the cache.
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BENCH_DIR = process.env.VMLINK_BENCH_DIR ?? join(tmpdir(), 'vmlink-bench-aio');

/** A file of `size` random bytes at `name` in the bench dir; reused when it already has that size. */
export function randomDataFile(name, size) {
  mkdirSync(BENCH_DIR, { recursive: true });
  const path = join(BENCH_DIR, name);
  try {
    if (statSync(path).size === size && statSync(path).blocks * 512 >= size) return path;
  } catch {
    // missing: create it below
  }
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4 << 20);
  try {
    for (let offset = 0; offset < size; offset += chunk.length) {
      const length = Math.min(chunk.length, size - offset);
      randomFillSync(chunk, 0, length);
      writeSync(fd, chunk, 0, length, offset);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Drops the file's pages from the page cache (dd iflag=nocache: posix_fadvise DONTNEED). */
export function dropCache(path) {
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Reads the whole file once so that buffered reads hit the page cache. */
export function warmCache(path) {
  execFileSync('dd', [`if=${path}`, 'of=/dev/null', 'bs=4M', 'status=none']);
}

export function benchPath(name) {
  mkdirSync(BENCH_DIR, { recursive: true });
  return join(BENCH_DIR, name);
}
