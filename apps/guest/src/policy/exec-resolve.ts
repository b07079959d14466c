import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * The only PATH exec ever uses: to find allowed bare names, and as the child's own PATH.
 * Never the agent's inherited PATH (a `.` or a writable directory in it would let a
 * client upload `/echo` into the root and have `exec echo` run it), never relative.
 */
export const FIXED_EXEC_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ResolveOptions {
  /** Directories searched in order; relative entries are skipped. Default FIXED_EXEC_PATH. */
  readonly searchPath?: string;
  /** The agent's real root (`--root`): a file that really lies under it is never chosen. */
  readonly root?: string | undefined;
}

/**
 * The absolute path a bare command name resolves to: the first regular, executable file
 * `DIR/name` in the search path whose real path is not inside the root. Undefined when
 * there is none.
 */
export async function resolveBareCommand(name: string, options: ResolveOptions = {}): Promise<string | undefined> {
  if (name.length === 0 || name.includes('/') || name.includes('\0') || name === '.' || name === '..') return undefined;
  for (const dir of (options.searchPath ?? FIXED_EXEC_PATH).split(':')) {
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    if (await isUsableExecutable(candidate, options.root)) return candidate;
  }
  return undefined;
}

/** A regular file we may execute, not (after symlinks) inside `root`. */
export async function isUsableExecutable(file: string, root: string | undefined): Promise<boolean> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return false;
    await access(file, constants.X_OK);
    if (root !== undefined && isInside(await realpath(file), root)) return false;
    return true;
  } catch {
    return false;
  }
}

/** True when `file` is `dir` itself or below it (both absolute, normalised). */
export function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
