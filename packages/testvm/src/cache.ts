import { mkdir, readdir, rename, rm, readFile, writeFile, stat, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/** `$VMLINK_TESTVM_CACHE`, else `$XDG_CACHE_HOME/vmlink-testvm`, else `~/.cache/vmlink-testvm`. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMLINK_TESTVM_CACHE) return env.VMLINK_TESTVM_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'vmlink-testvm');
  return join(homedir(), '.cache', 'vmlink-testvm');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const LOCK_STALE_MS = 10 * 60_000;

/**
 * A lock directory, so that concurrent builders (other vitest workers, other processes)
 * wait for one build instead of all doing it. A lock whose holder died is taken over.
 */
async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = NaN;
      try {
        holder = Number.parseInt(await readFile(join(lockDir, 'pid'), 'utf8'), 10);
      } catch {
        // The holder has not written its pid yet.
      }
      const age = await stat(lockDir).then((s) => Date.now() - s.mtimeMs, () => 0);
      if ((Number.isInteger(holder) && !pidAlive(holder)) || age > LOCK_STALE_MS) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      await sleep(200);
    }
  }
  try {
    await writeFile(join(lockDir, 'pid'), String(process.pid));
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

/**
 * Returns `dir`, building it first when missing. The build writes into a temporary
 * sibling that is renamed into place, so a reader never sees a half-built entry.
 */
export async function buildOnce(dir: string, build: (tmpDir: string) => Promise<void>): Promise<string> {
  if (await exists(dir)) return dir;
  const parent = join(dir, '..');
  await mkdir(parent, { recursive: true });
  return withLock(`${dir}.lock`, async () => {
    if (await exists(dir)) return dir;
    // Temp folders are only made under this lock: any left over come from a dead builder.
    const prefix = `${basename(dir)}.tmp-`;
    for (const stale of (await readdir(dirname(dir))).filter((name) => name.startsWith(prefix))) {
      await rm(join(dirname(dir), stale), { recursive: true, force: true });
    }
    const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await mkdir(tmp, { recursive: true });
    try {
      await build(tmp);
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      if (await exists(dir)) return dir;
      throw err;
    }
    return dir;
  });
}

/** Writes a small file so that readers see either the old or the new content, never half. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/**
 * Marks `dir` as just used and removes all but the `keep` most recently used entries
 * next to it (an initramfs is ~110 MB, a kernel ~75 MB; upgrades make new ones).
 */
export async function touchAndPrune(dir: string, keep: number, isEntry: (name: string) => boolean = () => true): Promise<void> {
  const now = new Date();
  await utimes(dir, now, now).catch(() => {});
  const parent = dirname(dir);
  const entries = (await readdir(parent)).filter((name) => isEntry(name) && !name.includes('.tmp-') && !name.endsWith('.lock'));
  const dated = await Promise.all(
    entries.map(async (name) => ({ name, mtimeMs: await stat(join(parent, name)).then((s) => s.mtimeMs, () => 0) })),
  );
  dated.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { name } of dated.slice(keep)) {
    // An entry that a running VM uses can go: QEMU has the file open already.
    await rm(join(parent, name), { recursive: true, force: true });
  }
}
