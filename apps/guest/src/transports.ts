import { createTransports, type Transport, type Transports } from '@vmlink/transport';

/**
 * Each transport plugin and the factory names it may export. Plugins are imported one by
 * one so that a plugin that cannot load here (no AF_VSOCK in a container, addon not
 * built) costs only its own URIs, never the agent.
 */
const PLUGINS: readonly { readonly specifier: string; readonly factories: readonly string[] }[] = [
  { specifier: '@vmlink/transport-unix', factories: ['unix'] },
  { specifier: '@vmlink/transport-vsock', factories: ['vsock'] },
  { specifier: '@vmlink/transport-virtio-serial', factories: ['virtioSerial', 'virtioSerialHost', 'virtioSerialGuest'] },
];

export interface LoadedTransports {
  readonly transports: Transports;
  /** Plugins that did not load, with why (logged by the caller). */
  readonly failures: readonly { readonly plugin: string; readonly error: Error }[];
}

export async function loadTransports(): Promise<LoadedTransports> {
  const list: Transport[] = [];
  const failures: { plugin: string; error: Error }[] = [];
  for (const plugin of PLUGINS) {
    try {
      const module = (await import(plugin.specifier)) as Record<string, unknown>;
      const made = plugin.factories
        .map((name) => module[name])
        .filter((f): f is () => Transport => typeof f === 'function')
        .map((factory) => factory());
      if (made.length === 0) throw new Error(`${plugin.specifier} exports none of ${plugin.factories.join(', ')}`);
      list.push(...made);
    } catch (error) {
      failures.push({ plugin: plugin.specifier, error: error as Error });
    }
  }
  return { transports: createTransports(dedupeSchemes(list)), failures };
}

/** A plugin may export both a combined and a side-specific factory: keep the first owner of each scheme. */
function dedupeSchemes(list: readonly Transport[]): Transport[] {
  const seen = new Set<string>();
  return list.filter((t) => {
    if (t.schemes.some((s) => seen.has(s))) return false;
    for (const s of t.schemes) seen.add(s);
    return true;
  });
}
