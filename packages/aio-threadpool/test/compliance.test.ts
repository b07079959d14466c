import { describeAioBackend } from '@vmlink/compliance/aio';
import { createThreadPoolBackend } from '../src/index.js';

describeAioBackend('threadpool', {
  setup: async () => createThreadPoolBackend(),
  child: { module: '@vmlink/aio-threadpool', factory: 'createThreadPoolBackend' },
  maxInFlight: 32,
});

describeAioBackend('threadpool (2 threads)', {
  setup: async () => createThreadPoolBackend({ threads: 2 }),
  child: { module: '@vmlink/aio-threadpool', factory: 'createThreadPoolBackend', options: { threads: 2 } },
  maxInFlight: 32,
});
