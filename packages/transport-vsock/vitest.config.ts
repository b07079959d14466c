import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'transport-vsock', include: ['test/**/*.test.ts'] },
});
