import { defineProject } from 'vitest/config';

// Guest tests boot QEMU under TCG: 15-40 s per boot on a busy 2-core machine.
export default defineProject({
  // test/arm64/: emulated arm64 guests, run with vitest.arm64.config.ts only.
  test: { name: 'testvm', include: ['test/**/*.test.ts'], exclude: ['test/arm64/**', '**/node_modules/**'], testTimeout: 120_000, hookTimeout: 180_000 },
});
