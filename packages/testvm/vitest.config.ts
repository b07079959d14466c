import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'testvm', include: ['test/**/*.test.ts'] },
});
