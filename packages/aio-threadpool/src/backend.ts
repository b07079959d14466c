import { FdBackend, type AioBackend, type BackendOptions } from '@vmlink/aio';
import type { ThreadPoolOptions } from './options.js';
import { ThreadPoolIo } from './pool-io.js';

/**
 * The thread-pool AioBackend: files opened with node:fs, I/O on the addon's own worker
 * threads (not libuv's pool). Throws the addon loader's coded error off Linux or unbuilt.
 */
export function createThreadPoolBackend(options?: ThreadPoolOptions): AioBackend {
  const io = new ThreadPoolIo(options);
  return new FdBackend({
    name: 'threadpool',
    capabilities: { direct: true, nowait: false, batch: true, cancel: true, misalignedDirect: 'reject' },
    io,
    recorder: io.recorder,
    release: () => io.close(),
  });
}

/** The thread pool as a bare FdIo on raw fds (e.g. the io_submit backend's fallback). Close it when done. */
export function createThreadPoolIo(options?: ThreadPoolOptions): ThreadPoolIo {
  return new ThreadPoolIo(options);
}

/** The factory @vmlink/aio's createBackend('threadpool', options) calls. */
export function createBackend(options?: BackendOptions): AioBackend {
  return createThreadPoolBackend(options === undefined ? undefined : { ...(options.threads === undefined ? {} : { threads: options.threads }) });
}
