import { invalidArgType, isLinux, unsupportedPlatform, validateObject } from '@vmlink/errors';
import { backendUnavailable } from './errors.js';
import { createFsBackend } from './fs-backend.js';
import type { AioBackend, BackendFactory, BackendName, BackendOptions } from './types.js';

/** Plugin packages by backend name, and the named factory each exports besides `createBackend`. */
const PLUGINS = {
  threadpool: { specifier: '@vmlink/aio-threadpool', factory: 'createThreadPoolBackend' },
  iosubmit: { specifier: '@vmlink/aio-iosubmit', factory: 'createIoSubmitBackend' },
} as const;

type PluginName = keyof typeof PLUGINS;

/** Codes that mean "not here" rather than "broken": 'auto' moves on to the fs backend. */
const UNAVAILABLE_CODES = new Set([
  'ERR_VMLINK_UNSUPPORTED_PLATFORM',
  'ERR_VMLINK_NATIVE_NOT_BUILT',
  'ERR_VMLINK_NATIVE_MISMATCH',
  'ERR_VMLINK_BACKEND_UNAVAILABLE',
]);

/**
 * Creates a backend by name. Plugins are imported on demand (they depend on this package,
 * not the other way round), so this is async. 'auto' picks the thread pool on Linux with
 * the addon built, else 'fs'. Naming a backend that cannot run here fails with
 * ERR_VMLINK_UNSUPPORTED_PLATFORM (off Linux) or ERR_VMLINK_BACKEND_UNAVAILABLE.
 */
export async function createBackend(name: BackendName = 'auto', options: BackendOptions = {}): Promise<AioBackend> {
  validateObject(options, 'options');
  switch (name) {
    case 'fs':
      return createFsBackend();
    case 'threadpool':
    case 'iosubmit':
      return createPluginBackend(name, options);
    case 'auto':
      if (!isLinux()) return createFsBackend();
      try {
        return await createPluginBackend('threadpool', options);
      } catch (error) {
        if (UNAVAILABLE_CODES.has((error as { code?: string }).code ?? '')) return createFsBackend();
        throw error;
      }
    default:
      throw invalidArgType('name', "one of 'auto', 'threadpool', 'iosubmit', 'fs'", name);
  }
}

async function createPluginBackend(name: PluginName, options: BackendOptions): Promise<AioBackend> {
  if (!isLinux()) throw unsupportedPlatform(`the '${name}' aio backend`);
  const plugin = PLUGINS[name];
  let module: Record<string, unknown>;
  try {
    module = (await import(plugin.specifier)) as Record<string, unknown>;
  } catch (cause) {
    throw backendUnavailable(name, `cannot load ${plugin.specifier} (is it installed and built?)`, cause);
  }
  const factory = (module['createBackend'] ?? module[plugin.factory]) as BackendFactory | undefined;
  if (typeof factory !== 'function') {
    throw backendUnavailable(name, `${plugin.specifier} exports neither createBackend nor ${plugin.factory}`);
  }
  try {
    return await factory(options);
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    if (code === 'ERR_VMLINK_NATIVE_NOT_BUILT' || code === 'ERR_VMLINK_NATIVE_MISMATCH') {
      throw backendUnavailable(name, (cause as Error).message, cause);
    }
    throw cause;
  }
}
