import { defineConfig } from 'vitest/config';

// Only the probe; the pool is vitest's default, as in the root config (forks: child
// processes started from process.execPath).
export default defineConfig({
  test: { include: ['worker-probe.mjs'], root: import.meta.dirname },
});
