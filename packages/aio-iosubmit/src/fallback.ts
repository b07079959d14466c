import { createFsFdIo, type FdIo } from '@vmlink/aio';
import { createThreadPoolIo } from '@vmlink/aio-threadpool';

/** The FdIo the guard routes to, and how to release it when the backend closes. */
export interface Fallback {
  readonly io: FdIo;
  /** Set when the backend created the FdIo (and so owns its threads). */
  readonly release?: () => Promise<void>;
}

/** Loader codes meaning "this addon build lacks the thread pool": use node:fs instead. */
const UNAVAILABLE = new Set(['ERR_VMLINK_NATIVE_NOT_BUILT', 'ERR_VMLINK_NATIVE_MISMATCH']);

/**
 * The default fallback: a dedicated thread pool (@vmlink/aio-threadpool), owned and
 * closed by the backend; the node:fs FdIo (libuv's pool) only if the pool cannot load.
 */
export function defaultFallback(): Promise<Fallback> {
  try {
    // The io_submit engine reads warm files from the cache itself; what it routes here
    // was judged cold or must stay off the loop, so the pool never reads on the loop.
    const pool = createThreadPoolIo({ cachedReadsOnLoop: false });
    return Promise.resolve({ io: pool, release: () => pool.close() });
  } catch (error) {
    if (!UNAVAILABLE.has((error as { code?: string }).code ?? '')) throw error;
    return Promise.resolve({ io: createFsFdIo() });
  }
}
