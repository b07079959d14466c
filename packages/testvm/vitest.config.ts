import { defineProject } from 'vitest/config';

// Guest tests boot QEMU under TCG: 15-40 s per boot on a busy 2-core machine.
export default defineProject({
  test: { name: 'testvm', include: ['test/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 180_000 },
});
