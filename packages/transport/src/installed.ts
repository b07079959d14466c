import { createTransports, type Transports } from './registry.js';
import type { Transport } from './types.js';

/** The first-party plugins and the factory each exports. */
const FIRST_PARTY_PLUGINS: readonly { readonly specifier: string; readonly factory: string }[] = [
  { specifier: '@vmlink/transport-unix', factory: 'unix' },
  { specifier: '@vmlink/transport-vsock', factory: 'vsock' },
  { specifier: '@vmlink/transport-virtio-serial', factory: 'virtioSerial' },
  { specifier: '@vmlink/transport-hvsock', factory: 'hvsock' },
];

export interface InstalledTransports {
  readonly transports: Transports;
  /** Plugins that could not be loaded here, and why (not installed, no addon, ...). */
  readonly failures: readonly { readonly plugin: string; readonly error: Error }[];
}

/**
 * A registry of every first-party plugin that loads here, for programs that accept any
 * URI a user gives them. Plugins are imported one by one (at run time, so this package
 * does not depend on them), and a plugin that cannot load (not installed, no AF_VSOCK,
 * addon not built) costs only its own schemes: it is reported in `failures`.
 */
export async function loadInstalledTransports(): Promise<InstalledTransports> {
  const loaded: Transport[] = [];
  const failures: { plugin: string; error: Error }[] = [];
  for (const { specifier, factory } of FIRST_PARTY_PLUGINS) {
    try {
      const plugin = (await import(specifier)) as Record<string, unknown>;
      const make = plugin[factory];
      if (typeof make !== 'function') throw new Error(`${specifier} does not export ${factory}()`);
      loaded.push((make as () => Transport)());
    } catch (error) {
      failures.push({ plugin: specifier, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }
  return { transports: createTransports(loaded), failures };
}
