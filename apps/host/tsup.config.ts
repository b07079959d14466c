import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts', 'src/demo.ts', 'src/demo-vm.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // Keep 'node:' specifiers: bare 'test' or 'timers/promises' resolve differently under bundlers.
  removeNodeProtocol: false,
  shims: true,
  // Workspace packages stay imports (plugins and @vmlink/testvm load lazily): never bundled.
  external: [/^@vmlink\//],
});
