import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lstat, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Partial downloads are written as `.NAME.vmlink-PID-RANDOM.part` next to the target: the
 * pid tells a later run whether the writer is gone (SIGKILL, power loss), so its
 * leftovers can be removed (the same scheme as the agent's temp files).
 */
export function partNameFor(name: string, pid = process.pid): string {
  return `.${name}.vmlink-${pid}-${randomBytes(6).toString('hex')}.part`;
}

const PART_NAME = /^\..+\.vmlink-(\d+)-[0-9a-f]{12}\.part$/;

/** The pid a partial download's name carries, or undefined when it is not one of ours. */
export function partOwner(name: string): number | undefined {
  const match = PART_NAME.exec(name);
  if (!match) return undefined;
  const pid = Number(match[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * True when no live process has `pid`. A zombie (exited, not yet reaped by its parent)
 * counts as gone: it will never write again, yet kill(pid, 0) still succeeds on it.
 */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'; // EPERM: alive, someone else's
  }
  try {
    // /proc/PID/stat: "pid (comm) S ...": the state follows the last ')' (comm may hold any byte).
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false; // no /proc here: kill() said it exists
  }
}

/**
 * Removes the partial downloads in `dir` left by vmlink processes that are gone; only
 * regular files owned by us, never our own. Returns the removed paths; never throws.
 */
export async function sweepStaleParts(dir: string): Promise<string[]> {
  const removed: string[] = [];
  const names = await readdir(dir).catch(() => [] as string[]);
  const uid = process.getuid?.();
  for (const name of names) {
    const pid = partOwner(name);
    if (pid === undefined || pid === process.pid || !processGone(pid)) continue;
    const full = path.join(dir, name);
    const stats = await lstat(full).catch(() => undefined);
    if (!stats?.isFile() || (uid !== undefined && stats.uid !== uid)) continue;
    await unlink(full).then(
      () => removed.push(full),
      () => undefined,
    );
  }
  return removed;
}
