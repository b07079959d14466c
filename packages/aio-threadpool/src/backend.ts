import { FdBackend, type AioBackend, type AioStats, type BackendOptions } from '@vmlink/aio';
import type { ThreadPoolOptions } from './options.js';
import { ThreadPoolIo } from './pool-io.js';

/** An FdBackend over a ThreadPoolIo whose stats() also show the pool's threads. */
class ThreadPoolBackend extends FdBackend {
  readonly #io: ThreadPoolIo;

  constructor(io: ThreadPoolIo) {
    super({
      name: 'threadpool',
      capabilities: { direct: true, nowait: false, batch: true, cancel: true, misalignedDirect: 'reject' },
      io,
      recorder: io.recorder,
      release: () => io.close(),
    });
    this.#io = io;
  }

  override stats(): AioStats {
    return { ...super.stats(), threads: this.#io.threadStats(), polling: this.#io.pollingStats() };
  }
}

/**
 * The thread-pool AioBackend: files opened with node:fs, I/O on the addon's own worker
 * threads (not libuv's pool). Throws the addon loader's coded error off Linux or unbuilt.
 */
export function createThreadPoolBackend(options?: ThreadPoolOptions): AioBackend {
  return new ThreadPoolBackend(new ThreadPoolIo(options));
}

/** The thread pool as a bare FdIo on raw fds (e.g. the io_submit backend's fallback). Close it when done. */
export function createThreadPoolIo(options?: ThreadPoolOptions): ThreadPoolIo {
  return new ThreadPoolIo(options);
}

const POOL_OPTIONS = [
  'threads',
  'minThreads',
  'maxThreads',
  'idleTimeoutMs',
  'growWhenSlowShare',
  'cachedBaseUs',
  'cachedBytesPerUs',
  'maxHoldUs',
  'maxHeld',
  'completionBudgetUs',
  'threadsPerInFlight',
  'maxThreadsPerInFlight',
  'riseWhenSleptShareBelow',
  'riseWhenLoopBusyBelow',
  'fallWhenSleptShareAbove',
  'keepRiseWhenFasterBy',
  'cachedReadsOnLoop',
  'loopReadBudgetUs',
  'coldReads',
  'pollUs',
  'pollWhenInFlightAtMost',
  'pollWhileHitShareAbove',
  'workerScheduling',
  'bufferedWritesPerFile',
  'workerCpus',
] as const satisfies readonly (keyof ThreadPoolOptions)[];

/** The factory @vmlink/aio's createBackend('threadpool', options) calls; other backends' options are ignored. */
export function createBackend(options?: BackendOptions): AioBackend {
  if (options === undefined || options === null || typeof options !== 'object') return createThreadPoolBackend(options as undefined);
  const picked: Record<string, unknown> = {};
  for (const key of POOL_OPTIONS) if (options[key] !== undefined) picked[key] = options[key];
  return createThreadPoolBackend(picked as ThreadPoolOptions);
}
