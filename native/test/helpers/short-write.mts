import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const child = fileURLToPath(new URL('./short-write-child.mjs', import.meta.url));

/** A completion as short-write-child.mjs prints it. */
export interface ShortWriteCompletion {
  readonly slot: number;
  readonly result: number;
  readonly partial: number;
}

/**
 * Runs short-write-child.mjs for `engine` with RLIMIT_FSIZE at 4096 bytes: an 8192-byte
 * write at 0 to `path` (slot 0), then a 1-byte write at 8192 (slot 1). Returns both completions.
 */
export async function shortWrite(engine: 'pool' | 'iosubmit', path: string): Promise<ShortWriteCompletion[]> {
  const { stdout } = await promisify(execFile)('bash', ['-c', 'ulimit -f 4 && exec "$0" "$@"', process.execPath, child, engine, path], {
    timeout: 60_000,
  });
  return JSON.parse(stdout) as ShortWriteCompletion[];
}
