import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'transport-virtio-serial', include: ['test/**/*.test.ts'] },
});
