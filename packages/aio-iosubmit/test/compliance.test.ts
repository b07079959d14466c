import { describeAioBackend } from '@vmlink/compliance/aio';
import { createIoSubmitBackend } from '../src/index.js';

const child = { module: '@vmlink/aio-iosubmit', factory: 'createIoSubmitBackend' } as const;

// Guarded: the blocking guard routes to the fallback (thread pool by default).
describeAioBackend('iosubmit (guarded, with fallback)', {
  setup: () => createIoSubmitBackend({ maxInFlight: 32 }),
  maxInFlight: 32,
  child: { ...child, options: { maxInFlight: 32 } },
});

// Strict: no guard, no fallback; everything goes through io_submit.
describeAioBackend('iosubmit (strict, no fallback)', {
  setup: () => createIoSubmitBackend({ strict: true, maxInFlight: 32 }),
  maxInFlight: 32,
  child: { ...child, options: { strict: true, maxInFlight: 32 } },
});
