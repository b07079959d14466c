/**
 * The blocking guard: decides, before submission, whether a request may go to io_submit
 * (where it must not block the event loop) or must go to the fallback FdIo (threads).
 * Pure logic over what the file knows about itself; no I/O here.
 */
import type { BufferedReads } from './options.js';

/** What a file knows that decides whether io_submit would block on it. */
export interface FileFacts {
  /** Opened with O_DIRECT. */
  readonly direct: boolean;
  /** Opened with O_APPEND: every write extends the file. */
  readonly append: boolean;
  /** Had fewer allocated blocks than its size at open: writes may land in holes. */
  readonly sparse: boolean;
  /** The size as last known (fstat at open, raised by completed writes). */
  readonly size: number;
}

export interface GuardPolicy {
  /** false = strict: everything goes to io_submit, nothing carries RWF_NOWAIT. */
  readonly guard: boolean;
  /** Buffered reads: io_submit with RWF_NOWAIT (page-cache hits), or straight to the fallback. */
  readonly bufferedReads: BufferedReads;
  /** Read RWF_NOWAIT is usable on this file (false after EOPNOTSUPP). */
  readonly readNowait: boolean;
  /** Write RWF_NOWAIT is usable on this file's file system (not switched off by the probe). */
  readonly writeNowait: boolean;
  /** Buffered reads of this file have been missing the page cache (see cold-reads.ts). */
  readonly coldReads: boolean;
}

/** Why the guard sent a request to the fallback. */
export type RouteReason = 'buffered' | 'cold' | 'append' | 'sparse' | 'extends';

export type Route =
  | { readonly to: 'kernel'; readonly nowait: boolean }
  | { readonly to: 'fallback'; readonly reason: RouteReason };

const KERNEL_BLOCKING: Route = Object.freeze({ to: 'kernel', nowait: false });
const KERNEL_NOWAIT: Route = Object.freeze({ to: 'kernel', nowait: true });
const COLD: Route = Object.freeze({ to: 'fallback', reason: 'cold' });

export function routeRead(file: FileFacts, policy: GuardPolicy): Route {
  if (!policy.guard) return KERNEL_BLOCKING;
  if (!file.direct && (policy.bufferedReads === 'fallback' || !policy.readNowait)) return { to: 'fallback', reason: 'buffered' };
  if (!file.direct && policy.coldReads) return COLD;
  // O_DIRECT reads of allocated data are asynchronous; NOWAIT catches the rest (and, for
  // buffered files, page-cache misses) with EAGAIN instead of blocking.
  return policy.readNowait ? KERNEL_NOWAIT : KERNEL_BLOCKING;
}

/** `end` is position + length; a number past 2^53 counts as extending. */
export function routeWrite(file: FileFacts, end: number, policy: GuardPolicy): Route {
  if (!policy.guard) return KERNEL_BLOCKING;
  // Buffered writes copy into the page cache inside io_submit, and may read-modify-write.
  if (!file.direct) return { to: 'fallback', reason: 'buffered' };
  if (file.append) return { to: 'fallback', reason: 'append' };
  // Block allocation happens inside io_submit (measured: up to 80 ms for an append).
  if (file.sparse) return { to: 'fallback', reason: 'sparse' };
  if (!(end <= file.size)) return { to: 'fallback', reason: 'extends' };
  return policy.writeNowait ? KERNEL_NOWAIT : KERNEL_BLOCKING;
}
