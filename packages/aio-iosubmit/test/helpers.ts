import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A scratch directory on the real file system (ext4 here: O_DIRECT works). */
export function scratchDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-iosubmit-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A file of `size` random bytes written for real (no holes, no unwritten extents), synced. */
export function writeRandomFile(path: string, size: number): Buffer {
  const data = randomBytes(size);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, data, 0, size, 0);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return data;
}

/** Drops the file's pages from the page cache (dd's nocache uses posix_fadvise DONTNEED). */
export function dropFileCache(path: string): void {
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Descriptors open in this process, as "fd -> target". */
export function openFds(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [`${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`];
    } catch {
      return []; // the directory's own fd, gone by now
    }
  });
}

/** Kernel AIO contexts mapped into this process (each io_setup maps one "[aio]" ring). */
export function aioContextMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes('[aio]')).length;
}
