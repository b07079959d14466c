import { leftoverName, leftoverWriter, processGone, processStateOf } from '@vmlink/agent-protocol';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { at, reopenPath, walkBeneath } from './beneath.js';

/** `.NAME.vmlink-PID-RANDOM.tmp`: the pid tells a later agent whether the writer is gone (the CLI's `.part` scheme too, @vmlink/agent-protocol). */
export function tempNameFor(name: string, pid = process.pid): string {
  return leftoverName(name, 'tmp', pid);
}

/** The pid in a temp file's name, if it is one of ours. */
export function tempFileWriter(name: string): number | undefined {
  return leftoverWriter(name, 'tmp');
}

export { processStateOf };

/** Whether a writer could still be writing (a zombie has exited: it cannot). */
export async function writerAlive(pid: number): Promise<boolean> {
  return !processGone(pid);
}

const OPEN_DIRECTORY = fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW;

/**
 * Removes temp files left by agents that died mid-write (SIGKILL, power loss), so a
 * killed transfer leaves nothing behind once an agent runs again. Walks at most
 * `maxEntries` entries; every directory is reached by the fd-relative, no-follow walk
 * (fs/beneath.ts), so a directory swapped for a symlink mid-sweep is never followed out of
 * the root. At most one directory fd is open at a time. Returns the removed paths.
 */
export async function sweepStaleTempFiles(root: string, maxEntries = 100_000): Promise<string[]> {
  const realRoot = await fsp.realpath(root);
  const handle = await fsp.open(realRoot, OPEN_DIRECTORY);
  const removed: string[] = [];
  const pending: string[][] = [[]];
  let seen = 0;
  try {
    while (pending.length > 0 && seen < maxEntries) {
      const segments = pending.pop() as string[];
      const dir = await openDirectory(handle, realRoot, segments);
      if (!dir) continue;
      try {
        const entries = await fsp.readdir(reopenPath(dir.fd), { withFileTypes: true }).catch(() => []);
        for (const entry of entries) {
          seen += 1;
          if (entry.isDirectory()) {
            pending.push([...segments, entry.name]);
            continue;
          }
          const writer = tempFileWriter(entry.name);
          if (!entry.isFile() || writer === undefined || writer === process.pid || (await writerAlive(writer))) continue;
          await fsp.unlink(at(dir.fd, entry.name)).then(() => removed.push(path.join(root, ...segments, entry.name)), () => undefined);
        }
      } finally {
        await dir.close().catch(() => undefined);
      }
    }
  } finally {
    await handle.close();
  }
  return removed;
}

/** Opens root/segments with the no-follow walk; undefined when it is gone or is not a plain directory. */
async function openDirectory(root: FileHandle, realRoot: string, segments: string[]): Promise<FileHandle | undefined> {
  // The magic link itself must be followed: no O_NOFOLLOW on a reopen.
  if (segments.length === 0) return fsp.open(reopenPath(root.fd), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  const walked = await walkBeneath({ handle: root, realRoot }, segments, { mode: 'directory', followSymlinks: false, clientPath: segments.join('/') }).catch(
    () => undefined,
  );
  return walked?.dir;
}
