import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig(
  packageBuild(['src/index.ts', 'src/cli.ts'], {
    shims: true,
    // Workspace packages stay imports (plugins and @vmlink/testvm load lazily): never bundled.
    external: [/^@vmlink\//],
  }),
);
