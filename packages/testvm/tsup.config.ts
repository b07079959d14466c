import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // Keep 'node:' specifiers: bare 'test' or 'timers/promises' resolve differently under bundlers.
  removeNodeProtocol: false,
  // assets.ts finds ../assets through import.meta.url, also in the CJS build.
  shims: true,
});
