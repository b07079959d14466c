import { invalidArgType, isLinux, unsupportedPlatform, validateObject } from '@vmlink/errors';
import { backendUnavailable } from './errors.js';
import { createFsBackend } from './fs-backend.js';
import type { AioBackend, BackendFactory, BackendName, BackendOptions, BackendSelection } from './types.js';

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

/** The fallback warning is printed once per process, not once per backend. */
let warnedFallback = false;

/** Attaches how the backend was chosen, as the read-only `selection` property. */
function withSelection(backend: AioBackend, selection: Omit<BackendSelection, 'picked'>): AioBackend {
  Object.defineProperty(backend, 'selection', { value: Object.freeze({ ...selection, picked: backend.name }), enumerable: true });
  return backend;
}

/**
 * 'auto' fell back to the portable backend: say so in `selection`, and once per process
 * as a warning (code VMLINK_AIO_FALLBACK), since the fs backend is much slower and may
 * stall on the libuv pool shared with DNS and crypto.
 */
function fallBack(reason: string): AioBackend {
  if (!warnedFallback) {
    warnedFallback = true;
    process.emitWarning(`@vmlink/aio: createBackend('auto') fell back to the 'fs' backend: ${reason}`, { code: 'VMLINK_AIO_FALLBACK' });
  }
  return withSelection(createFsBackend(), { requested: 'auto', reason, fellBack: true });
}

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
      return withSelection(createFsBackend(), { requested: 'fs', reason: "asked for by name", fellBack: false });
    case 'threadpool':
    case 'iosubmit':
      return withSelection(await createPluginBackend(name, options), { requested: name, reason: 'asked for by name', fellBack: false });
    case 'auto': {
      if (!isLinux()) return fallBack(`the native backends need Linux; this platform is '${process.platform}'`);
      let backend: AioBackend;
      try {
        backend = await createPluginBackend('threadpool', options);
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        if (UNAVAILABLE_CODES.has(code)) return fallBack(`${code}: ${(error as Error).message}`);
        throw error;
      }
      return withSelection(backend, { requested: 'auto', reason: `the native addon loads on ${process.platform}-${process.arch}`, fellBack: false });
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
