import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // Keep 'node:' specifiers: bare 'test' or 'timers/promises' resolve differently under bundlers.
  removeNodeProtocol: false,
});
