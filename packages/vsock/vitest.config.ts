import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'vsock', include: ['test/**/*.test.ts'] },
});
