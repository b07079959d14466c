import { defineConfig } from 'vitest/config';

// Only the probe; the pool is vitest's default, as in the root config (forks: child
// processes started from process.execPath).
export default defineConfig({
  test: { include: ['probe.test.mjs'], root: import.meta.dirname },
});
