// The engines under test, opened the same way for every benchmark.
import { constants } from 'node:fs';
import { open as openHandle } from 'node:fs/promises';
import { allocAligned, createFsBackend, O_DIRECT } from '@vmlink/aio';
import { createIoSubmitBackend } from '@vmlink/aio-iosubmit';
import { createThreadPoolBackend } from '@vmlink/aio-threadpool';

export const DIRECT_READ = constants.O_RDONLY | O_DIRECT;
export const DIRECT_RW = constants.O_RDWR | O_DIRECT;

/** Backend factories by engine name. */
export const BACKENDS = {
  'iosubmit': (options = {}) => createIoSubmitBackend({ maxInFlight: 128, ...options }),
  'iosubmit strict': (options = {}) => createIoSubmitBackend({ maxInFlight: 128, ...options, strict: true }),
  'threadpool': (options = {}) => createThreadPoolBackend(options),
  // The workers under SCHED_IDLE (opt-in: they starve behind any busy thread on their CPUs).
  'threadpool idle workers': (options = {}) => createThreadPoolBackend({ ...options, workerScheduling: 'idle' }),
  'fs': () => createFsBackend(),
};

/**
 * Opens `path` with `flags` on `engine` and returns { read(buf, pos), write(buf, pos),
 * stats(), close() }. The 'node FileHandle' engine is node:fs/promises.
 */
export async function openEngine(engine, path, flags, options) {
  if (engine === 'node FileHandle') {
    const handle = await openHandle(path, flags);
    return {
      read: async (buffer, position) => (await handle.read(buffer, 0, buffer.length, position)).bytesRead,
      write: async (buffer, position) => (await handle.write(buffer, 0, buffer.length, position)).bytesWritten,
      stats: () => undefined,
      close: () => handle.close(),
    };
  }
  const backend = await BACKENDS[engine](options);
  const file = await backend.open(path, flags);
  return {
    backend,
    read: (buffer, position) => file.read(buffer, position),
    write: (buffer, position) => file.write(buffer, position),
    stats: () => backend.stats(),
    close: async () => {
      await file.close();
      await backend.close();
    },
  };
}

/** One aligned buffer per in-flight request. */
export function buffers(count, size) {
  return Array.from({ length: count }, () => allocAligned(size, 4096));
}
