import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

// dist/ is emptied by the build script: two configs run in parallel, so neither cleans.
// ./aio runs its cases with vitest, which is ESM-only (require() of it throws): the entry
// is ESM-only too, so a CommonJS consumer gets a clear ERR_PACKAGE_PATH_NOT_EXPORTED
// instead of a crash inside vitest. ./transport keeps both formats (node:test runner).
export default defineConfig([
  packageBuild({ transport: 'src/transport/index.ts' }, { clean: false, external: ['vitest'] }),
  packageBuild({ aio: 'src/aio/index.ts' }, { clean: false, external: ['vitest'], format: ['esm'] }),
]);
