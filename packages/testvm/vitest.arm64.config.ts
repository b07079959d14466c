import { defineConfig } from 'vitest/config';

// The emulated arm64 guest tests, kept out of the default run (vitest.config.ts): each
// TCG arm64 boot costs ~15-40 s and a first run fetches ~200 MB of arm64 packages.
export default defineConfig({
  test: { name: 'testvm-arm64', root: import.meta.dirname, include: ['test/arm64/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 360_000 },
});
