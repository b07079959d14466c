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

/**
 * Connections that fit: a quarter of the fds and 32 more are kept for everything else
 * (files being read, exec pipes, the loop's own), and each connection may be followed by
 * a quarter of one being told why it was closed (the agent's lingering goodbyes).
 */
export function fdsForConnections(openFileLimit: number): number {
  return Math.max(1, Math.floor((Math.floor(openFileLimit * 0.75) - 32) / 1.25));
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
