import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'transport-hvsock', include: ['test/**/*.test.ts'] },
});
