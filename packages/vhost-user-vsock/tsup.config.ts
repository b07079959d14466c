import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

// src/cli.ts is the vmlink-vsockd binary.
export default defineConfig(packageBuild(['src/index.ts', 'src/cli.ts']));
