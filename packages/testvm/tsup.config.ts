import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig(
  packageBuild(['src/index.ts', 'src/cli.ts'], {
    // assets.ts finds ../assets through import.meta.url, also in the CJS build.
    shims: true,
  }),
);
