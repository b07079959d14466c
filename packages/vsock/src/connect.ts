import type { Binding, FdStream } from './binding.js';
import { connectTimeoutError } from './errors.js';

export interface ConnectTarget {
  cid: number;
  port: number;
  flags: number;
  /** Milliseconds; undefined leaves the kernel default (2 s). */
  timeout: number | undefined;
}

/**
 * Starts a non-blocking connect on `handle`'s fd: connect() -> EINPROGRESS -> wait until
 * writable -> SO_ERROR. `done` runs exactly once, never synchronously: null when
 * connected, else the error (the kernel's, or ETIMEDOUT from the `timeout` bound). The
 * caller destroys the handle on error, which closes the fd; it also owns any AbortSignal.
 * Returns a function that cancels the timer (closing the fd ends the connect itself).
 */
export function beginConnect(binding: Binding, handle: FdStream, target: ConnectTarget, done: (error: Error | null) => void): () => void {
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const cleanup = () => {
    if (timer !== undefined) clearTimeout(timer);
  };
  const finish = (error: Error | null) => {
    if (settled) return;
    settled = true;
    cleanup();
    done(error);
  };

  const { cid, port } = target;
  try {
    if (target.timeout !== undefined) {
      // The kernel's timer and ours: whichever fires first reports ETIMEDOUT.
      binding.vsockSetConnectTimeout(handle.fd, target.timeout);
      timer = setTimeout(() => finish(connectTimeoutError(cid, port)), target.timeout);
      timer.unref(); // the fd's watcher keeps the loop alive, and honours unref()
    }
    if (binding.vsockConnect(handle.fd, cid, port, target.flags)) {
      process.nextTick(finish, null);
    } else {
      handle.awaitWritable(() => finish(binding.vsockConnectResult(handle.fd, cid, port)));
    }
  } catch (error) {
    process.nextTick(finish, error as Error);
  }
  return () => {
    settled = true;
    cleanup();
  };
}
