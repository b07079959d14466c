import { leftoverName, leftoverWriter, processGone } from '@vmlink/agent-protocol';
import { lstat, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Partial downloads are written as `.NAME.vmlink-PID-RANDOM.part` next to the target: the
 * pid tells a later run whether the writer is gone (SIGKILL, power loss), so its
 * leftovers can be removed. The scheme and the "process gone" check are the agent's too
 * (its upload temp files), from @vmlink/agent-protocol.
 */
export function partNameFor(name: string, pid = process.pid): string {
  return leftoverName(name, 'part', pid);
}

/** The pid a partial download's name carries, or undefined when it is not one of ours. */
export function partOwner(name: string): number | undefined {
  return leftoverWriter(name, 'part');
}

export { processGone };

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
