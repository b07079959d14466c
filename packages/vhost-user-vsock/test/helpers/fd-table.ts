// What fds this process has open, and which of them a test's own operations left behind.
//
// Node's runtime opens some descriptors lazily, on first need, and keeps them for the
// life of the process: Node 26's libuv a timerfd, io_uring rings and their eventfds, an
// extra epoll instance, /dev/null. A check that counts every fd fails when such an fd
// first appears in the middle of a test. Two ways around it, each still catching a leak:
//  - warm first (warm-up cycle): run the operation once before the baseline, so whatever
//    the runtime opens for it is open already; a leak happens on every cycle, so the
//    second one shows it exactly, whatever kind of fd it is (`fdsOpenedSince`);
//  - where a warm-up is too costly (a VM boot): ignore new fds of the kinds the runtime
//    opens lazily (`fdsLeakedSince`), which still catches sockets, memfds and files; the
//    exact check of the same code runs in the warm-up tests.
import { readdirSync, readlinkSync } from 'node:fs';

/** fd number -> what it points to (`socket:[123]`, `anon_inode:[eventfd]`, `/memfd:...`). */
export type FdTable = ReadonlyMap<number, string>;

export function openFds(): FdTable {
  const table = new Map<number, string>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      table.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // the fd of the readdir itself, closed by now
    }
  }
  return table;
}

function describe(fd: number, target: string): string {
  return `${fd} -> ${target}`;
}

/** Fds open now that were not open (or pointed elsewhere) in `before`, as "fd -> target". */
export function fdsOpenedSince(before: FdTable, now: FdTable = openFds()): string[] {
  return [...now].filter(([fd, target]) => before.get(fd) !== target).map(([fd, target]) => describe(fd, target));
}

/** Fds of `before` closed since (or now pointing elsewhere), as "fd -> target". */
export function fdsClosedSince(before: FdTable, now: FdTable = openFds()): string[] {
  return [...before].filter(([fd, target]) => now.get(fd) !== target).map(([fd, target]) => describe(fd, target));
}

/** Kinds of fd Node's runtime may open lazily on its own (see the top of this file). */
export const RUNTIME_LAZY_KINDS = /^(anon_inode:\[(timerfd|eventfd|eventpoll|io_uring|signalfd)\]|\/dev\/null)$/;

/** `fdsOpenedSince` without the kinds the runtime opens lazily: sockets, memfds, files, pipes. */
export function fdsLeakedSince(before: FdTable, now: FdTable = openFds()): string[] {
  return [...now]
    .filter(([fd, target]) => before.get(fd) !== target && !RUNTIME_LAZY_KINDS.test(target))
    .map(([fd, target]) => describe(fd, target));
}
