import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'vhost-user-vsock', include: ['test/**/*.test.ts'] },
});
