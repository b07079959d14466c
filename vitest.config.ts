import { defineConfig } from 'vitest/config';

// One run for every package's tests. Tests that boot a QEMU guest live in the same
// projects; they are slow under TCG, so files run with at most 2 workers (2 cores).
// Under CI a JSON report is written too, so .ci/run can print a plain closing count.
export default defineConfig({
  test: {
    projects: ['native', 'packages/*', 'apps/*', 'bench'],
    maxWorkers: 2,
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.vitest-results.json' },
  },
});
