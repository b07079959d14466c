export { createThreadPoolBackend, createThreadPoolIo, createBackend } from './backend.js';
export { ThreadPoolIo } from './pool-io.js';
export { defaultThreadCount, MAX_THREADS, type ThreadPoolOptions } from './options.js';
