import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'aio', include: ['test/**/*.test.ts'] },
});
