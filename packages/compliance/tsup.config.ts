import { defineConfig, type Options } from 'tsup';

const common: Options = {
  dts: true,
  sourcemap: true,
  target: 'node20',
  // Keep 'node:' specifiers: bare 'test' or 'timers/promises' resolve differently under bundlers.
  removeNodeProtocol: false,
  external: ['vitest'],
};

// dist/ is emptied by the build script: two configs run in parallel, so neither cleans.
// ./aio runs its cases with vitest, which is ESM-only (require() of it throws): the entry
// is ESM-only too, so a CommonJS consumer gets a clear ERR_PACKAGE_PATH_NOT_EXPORTED
// instead of a crash inside vitest. ./transport keeps both formats (node:test runner).
export default defineConfig([
  { ...common, entry: { transport: 'src/transport/index.ts' }, format: ['esm', 'cjs'], clean: false },
  { ...common, entry: { aio: 'src/aio/index.ts' }, format: ['esm'], clean: false },
]);
