import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'transport-unix', include: ['test/**/*.test.ts'] },
});
