import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'aio-threadpool', include: ['test/**/*.test.ts'] },
});
