import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'host',
    include: ['test/**/*.test.ts'],
    // Most tests spawn the real CLI and agent as node processes, several per test; on 2
    // shared cores one spawn can take seconds. These are liveness limits, not speed checks.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
