import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'aio-iosubmit', include: ['test/**/*.test.ts'] },
});
