import { readFileSync } from 'node:fs';

/**
 * The soft RLIMIT_NOFILE of this process, from /proc/self/limits; undefined where it
 * cannot be read or is unlimited. (Node has no getrlimit.)
 */
export function readOpenFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const match = /^Max open files\s+(\S+)/m.exec(text);
  const soft = match?.[1];
  if (soft === undefined || soft === 'unlimited') return undefined;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** fds kept for everything but client connections: files being read, exec pipes, the loop's own. */
export function fdsForConnections(openFileLimit: number): number {
  return Math.max(1, Math.floor(openFileLimit * 0.75) - 32);
}

/**
 * The connection cap that fits the open-file limit. When the kernel runs out of fds,
 * libuv accepts and closes new connections silently (its EMFILE trick) and nothing
 * reaches the agent to log; a cap below the limit keeps the agent on its own,
 * logged, path: idle connections are closed to admit new ones.
 */
export function capForOpenFileLimit(requested: number, openFileLimit: number | undefined): number {
  if (openFileLimit === undefined) return requested;
  return Math.min(requested, fdsForConnections(openFileLimit));
}
