import { defineProject } from 'vitest/config';

// Guest tests boot QEMU under TCG: 15-40 s per boot on a busy 2-core machine.
export default defineProject({
  // Only test/*.test.ts: test/arm64/ (emulated arm64 guests) runs with vitest.arm64.config.ts.
  // No own 'exclude', so a command-line --exclude (npm run test:host) still applies.
  test: { name: 'testvm', include: ['test/*.test.ts'], testTimeout: 120_000, hookTimeout: 180_000 },
});
