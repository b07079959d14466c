import { defineConfig } from 'vitest/config';

// One run for every package's tests. Tests that boot a QEMU guest live in the same
// projects; they are slow under TCG, so files run with at most 2 workers (2 cores).
export default defineConfig({
  test: {
    projects: ['native', 'packages/*', 'apps/*'],
    maxWorkers: 2,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
