import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'guest',
    include: ['test/**/*.test.ts'],
    // Many tests spawn agents and clients as node processes; on 2 shared cores a spawn or a
    // walk of 100 paths can take seconds (the 5 s default failed under load). Liveness
    // limits, not speed checks.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
