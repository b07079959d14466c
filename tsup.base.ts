// The tsup build every @vmlink package shares. Each packages/*/tsup.config.ts and
// apps/*/tsup.config.ts passes its entries and, spelled out next to them, whatever it does
// differently (a second entry point, shims for import.meta.url in CJS, externals).
import type { Options } from 'tsup';

/** ESM and CJS with types and source maps, for the engines floor (Node 20); `differences` win. */
export function packageBuild(entry: NonNullable<Options['entry']>, differences: Options = {}): Options {
  return {
    entry,
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    // Keep 'node:' specifiers: bare 'test' or 'timers/promises' resolve differently under bundlers.
    removeNodeProtocol: false,
    ...differences,
  };
}
