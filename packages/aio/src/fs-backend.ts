import { O_DIRECT } from './align.js';
import { FdBackend } from './fd-backend.js';
import { FsFdIo } from './fs-io.js';
import { StatsRecorder } from './stats.js';
import type { AioBackend } from './types.js';

/**
 * The portable backend on node:fs: every request is one libuv fs request. It is the
 * reference the other backends are compared with, and what 'auto' gives off Linux.
 */
export function createFsBackend(): AioBackend {
  const recorder = new StatsRecorder();
  return new FdBackend({
    name: 'fs',
    capabilities: { direct: O_DIRECT !== 0, nowait: false, batch: false, cancel: false, misalignedDirect: 'reject' },
    io: new FsFdIo(recorder),
    recorder,
  });
}

/** An FdIo on node:fs with its own stats, for backends that need a portable fallback. */
export function createFsFdIo(): FsFdIo {
  return new FsFdIo();
}
