import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { VmlinkError, describeValue, invalidArgType } from '@vmlink/errors';
import { createTransports, type Transports } from './registry.js';
import type { Transport } from './types.js';

/** The first-party plugins and the factory each exports. */
const FIRST_PARTY_PLUGINS: readonly { readonly specifier: string; readonly factory: string }[] = [
  { specifier: '@vmlink/transport-unix', factory: 'unix' },
  { specifier: '@vmlink/transport-vsock', factory: 'vsock' },
  { specifier: '@vmlink/transport-virtio-serial', factory: 'virtioSerial' },
  { specifier: '@vmlink/transport-hvsock', factory: 'hvsock' },
];

/** A plugin the user named that cannot be used: its module, its factory or its Transport is wrong. */
export const TRANSPORT_PLUGIN_ERROR = 'ERR_VMLINK_TRANSPORT_PLUGIN';

export interface LoadTransportsOptions {
  /**
   * The user's own plugins, as `--transport MODULE` gives them: a package name, or a path
   * (absolute, or starting with `./` / `../`, resolved against `cwd`), optionally followed
   * by `#factoryName`. Without `#name` the module's default export is the factory, or its
   * only exported function. Unlike first-party plugins, one that cannot be loaded is an
   * error (`ERR_VMLINK_TRANSPORT_PLUGIN`): the user asked for it by name.
   */
  readonly plugins?: readonly string[];
  /** Transports built by the caller (a program using the apps as libraries). */
  readonly transports?: readonly Transport[];
  /** Where relative paths and package names of `plugins` are resolved from (default `process.cwd()`). */
  readonly cwd?: string;
}

export interface InstalledTransports {
  readonly transports: Transports;
  /** Plugins that could not be loaded here, and why (not installed, no addon, ...). */
  readonly failures: readonly { readonly plugin: string; readonly error: Error }[];
  /** First-party plugins left out because one of the user's transports claims one of their schemes. */
  readonly replaced: readonly { readonly plugin: string; readonly by: string; readonly schemes: readonly string[] }[];
}

/**
 * A registry of every first-party plugin that loads here, plus the user's own, for
 * programs that accept any URI a user gives them. First-party plugins are imported one by
 * one (at run time, so this package does not depend on them), and one that cannot load
 * (not installed, no AF_VSOCK, addon not built) costs only its own schemes: it is reported
 * in `failures`. The user's transports (`plugins`, `transports`) come first: a scheme one
 * of them claims replaces the first-party plugin that owns it (reported in `replaced`);
 * two of the user's claiming one scheme is `ERR_VMLINK_DUPLICATE_SCHEME`.
 */
export async function loadInstalledTransports(options: LoadTransportsOptions = {}): Promise<InstalledTransports> {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'of type object', options);
  }
  const own: { transport: Transport; origin: string }[] = [];
  for (const transport of options.transports ?? []) own.push({ transport, origin: `transports option (${describeTransport(transport)})` });
  for (const specifier of options.plugins ?? []) {
    own.push({ transport: await loadTransportPlugin(specifier, options.cwd ?? process.cwd()), origin: specifier });
  }
  // A malformed Transport or a scheme claimed twice among the user's own fails here, by name.
  createTransports(own.map((o) => o.transport));
  const claimed = new Map<string, string>();
  for (const { transport, origin } of own) for (const scheme of transport.schemes) claimed.set(scheme, origin);

  const loaded: Transport[] = [];
  const failures: { plugin: string; error: Error }[] = [];
  const replaced: { plugin: string; by: string; schemes: string[] }[] = [];
  for (const { specifier, factory } of FIRST_PARTY_PLUGINS) {
    try {
      const plugin = (await import(specifier)) as Record<string, unknown>;
      const make = plugin[factory];
      if (typeof make !== 'function') throw new Error(`${specifier} does not export ${factory}()`);
      const transport = (make as () => Transport)();
      const taken = transport.schemes.filter((scheme) => claimed.has(scheme));
      if (taken.length > 0) {
        replaced.push({ plugin: specifier, by: claimed.get(taken[0] as string) as string, schemes: taken });
        continue;
      }
      loaded.push(transport);
    } catch (error) {
      failures.push({ plugin: specifier, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }
  return { transports: createTransports([...own.map((o) => o.transport), ...loaded]), failures, replaced };
}

function describeTransport(transport: Transport): string {
  const t = transport as Partial<Transport> | null;
  return typeof t?.name === 'string' ? `'${t.name}'` : describeValue(transport);
}

function pluginError(specifier: string, reason: string, cause?: unknown): VmlinkError {
  return new VmlinkError(TRANSPORT_PLUGIN_ERROR, `transport plugin '${specifier}': ${reason}`, cause === undefined ? undefined : { cause });
}

/** `MODULE[#factory]` -> the module and the factory name, if given. */
export function splitPluginSpecifier(specifier: string): { module: string; factory: string | undefined } {
  const hash = specifier.lastIndexOf('#');
  // A leading '#' is a package.json "imports" name, not a factory.
  if (hash <= 0) return { module: specifier, factory: undefined };
  const factory = specifier.slice(hash + 1);
  if (!/^[A-Za-z_$][\w$]*$/.test(factory)) return { module: specifier, factory: undefined };
  return { module: specifier.slice(0, hash), factory };
}

function isPath(module: string): boolean {
  return path.isAbsolute(module) || module === '.' || module === '..' || module.startsWith('./') || module.startsWith('../');
}

/**
 * Imports one user plugin and calls its factory. Package names are resolved from `cwd`
 * (the user's project), not from this package: a plugin installed next to the program
 * that uses it must be found.
 */
async function loadTransportPlugin(specifier: string, cwd: string): Promise<Transport> {
  if (typeof specifier !== 'string' || specifier.trim() === '') throw pluginError(String(specifier), 'a module name or path is required');
  const { module, factory } = splitPluginSpecifier(specifier.trim());
  let url: string;
  try {
    const from = createRequire(path.join(path.resolve(cwd), 'noop.js'));
    const resolved = from.resolve(isPath(module) ? path.resolve(cwd, module) : module);
    // A built-in ('node:os') resolves to itself, not to a file.
    url = path.isAbsolute(resolved) ? pathToFileURL(resolved).href : resolved;
  } catch (error) {
    // ESM-only packages (no "require"/"default" export condition) are not found by
    // require.resolve: let import() try from here before giving up.
    if (isPath(module)) throw pluginError(specifier, `cannot find '${path.resolve(cwd, module)}'`, error);
    url = module;
  }
  let exports: Record<string, unknown>;
  try {
    exports = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw pluginError(specifier, `cannot be imported: ${(error as Error).message}`, error);
  }
  const make = pickFactory(specifier, exports, factory);
  let transport: unknown;
  try {
    transport = await (make as () => unknown)();
  } catch (error) {
    throw pluginError(specifier, `its factory threw: ${(error as Error).message}`, error);
  }
  const t = transport as Partial<Transport> | null;
  if (t === null || typeof t !== 'object' || typeof t.name !== 'string' || !Array.isArray(t.schemes) || typeof t.dial !== 'function' || typeof t.listen !== 'function' || typeof t.parse !== 'function') {
    throw pluginError(specifier, `its factory returned ${describeValue(transport)}, not a Transport (name, schemes, capabilities, parse, dial, listen)`);
  }
  return transport as Transport;
}

function pickFactory(specifier: string, exports: Record<string, unknown>, factory: string | undefined): unknown {
  const functions = Object.keys(exports).filter((name) => typeof exports[name] === 'function');
  if (factory !== undefined) {
    if (typeof exports[factory] !== 'function') {
      throw pluginError(specifier, `exports no function '${factory}' (functions: ${functions.join(', ') || 'none'})`);
    }
    return exports[factory];
  }
  if (typeof exports['default'] === 'function') return exports['default'];
  const named = functions.filter((name) => name !== 'default');
  if (named.length === 1) return exports[named[0] as string];
  throw pluginError(
    specifier,
    named.length === 0
      ? 'exports no factory function'
      : `exports several functions (${named.join(', ')}): name the factory as '${specifier}#${named[0]}'`,
  );
}
