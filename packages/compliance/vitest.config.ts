import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'compliance', include: ['test/**/*.test.ts'] },
});
