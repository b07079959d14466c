// The demos' own build (`npm run build:demo -w vmlink`, run by the root `demo` and
// `demo:vm` scripts): into demo/dist, outside the vmlink package's `files`, so the
// published CLI does not ship them. ESM only, no types: they are programs, not a library.
import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['demo/demo.ts', 'demo/demo-vm.ts'],
  outDir: 'demo/dist',
  format: ['esm'],
  dts: false,
  clean: true,
  sourcemap: true,
  target: 'node20',
  removeNodeProtocol: false,
  // Workspace packages stay imports (@vmlink/testvm loads lazily): never bundled.
  external: [/^@vmlink\//],
});
