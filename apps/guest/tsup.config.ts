import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig(
  packageBuild(['src/index.ts', 'src/cli.ts'], {
    shims: true,
    // Workspace packages stay imports (some are loaded lazily, e.g. @vmlink/vsock): never bundled.
    external: [/^@vmlink\//],
  }),
);
