import { createFsBackend } from '@vmlink/aio';
import { describeAioBackend } from '../src/aio/index.js';

// The fs reference backend against the suite (the suite also uses it as the reference).
describeAioBackend('fs', {
  setup: async () => createFsBackend(),
  child: { module: '@vmlink/aio', factory: 'createFsBackend' },
  maxInFlight: 32,
});
