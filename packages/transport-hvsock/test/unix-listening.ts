import { readFileSync } from 'node:fs';

// socat says nothing when it listens, and its socket file appears at bind(), before
// listen(): a connect in between is refused (ECONNREFUSED, seen under CI load). The
// kernel's table of Unix sockets tells when one is listening without connecting to it
// (a probe connection would reach the program socat runs).

/** __SO_ACCEPTCON in /proc/net/unix's Flags column: the socket listens. */
const LISTENING = 0x10000;

/** True when a Unix socket bound to `path` is listening (per /proc/net/unix). */
export function isListening(path: string): boolean {
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path
    if (fields[7] === path && (Number.parseInt(fields[3] ?? '0', 16) & LISTENING) !== 0) return true;
  }
  return false;
}

/** Waits until a Unix socket at `path` listens; throws naming the path after `timeoutMs`. */
export async function untilListening(path: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!isListening(path)) {
    if (Date.now() > deadline) throw new Error(`nothing listens on ${path} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
