import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';

/**
 * The modules the guest needs, in the order given by kernel-facts.md; their
 * dependencies are added in front of them from each module's own `depends=` tag, because
 * the unpacked .deb has no modules.dep (depmod runs at install time).
 */
export const GUEST_MODULES = [
  'virtio_pci',
  'virtio_console',
  'vsock',
  'vsock_loopback',
  'vmw_vsock_virtio_transport',
  '9pnet_virtio',
  '9p',
] as const;

/**
 * Modules in the initramfs that /init loads only when the kernel command line names them
 * (`vmlink.modules=a,b`, see qemu.ts): the virtio vsock transport is wanted only with a
 * vsock device, so guests without one keep exactly the loopback-only vsock of before.
 */
export const OPTIONAL_GUEST_MODULES: readonly string[] = ['vmw_vsock_virtio_transport'];

const MODULE_FILE = /\.ko(\.xz|\.zst)?$/;

export function moduleNameOf(fileName: string): string {
  return fileName.replace(MODULE_FILE, '').replaceAll('-', '_');
}

/** name -> path of every module file below `dir`. */
export async function indexModules(dir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (entry.isFile() && MODULE_FILE.test(entry.name)) {
      index.set(moduleNameOf(entry.name), join(entry.parentPath ?? entry.path, entry.name));
    }
  }
  return index;
}

/** A module's bytes, uncompressed (busybox insmod takes plain .ko files). */
export async function readModule(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFile(path);
  const tool = path.endsWith('.xz') ? 'xz' : 'zstd';
  return new Promise<Buffer>((resolve, reject) => {
    execFile(tool, ['-dc', path], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });
}

/** The `depends=` list from a module's .modinfo strings. */
export function moduleDepends(bytes: Buffer): string[] {
  const tag = Buffer.from('\0depends=');
  const at = bytes.indexOf(tag);
  if (at < 0) return [];
  const start = at + tag.length;
  const end = bytes.indexOf(0, start);
  const list = bytes.subarray(start, end < 0 ? bytes.length : end).toString('latin1');
  return list === '' ? [] : list.split(',').map((name) => name.replaceAll('-', '_'));
}

export interface ResolvedModule {
  name: string;
  bytes: Buffer;
}

/** `wanted` plus their dependencies, each after everything it depends on. */
export async function resolveModules(index: Map<string, string>, wanted: readonly string[]): Promise<ResolvedModule[]> {
  const ordered: ResolvedModule[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, chain: readonly string[]): Promise<void> => {
    if (seen.has(name)) return;
    seen.add(name);
    const path = index.get(name);
    if (path === undefined) {
      throw new Error(`kernel module '${name}' not found (needed by ${chain.join(' -> ') || 'the guest'})`);
    }
    const bytes = await readModule(path);
    for (const dep of moduleDepends(bytes)) await visit(dep, [...chain, name]);
    ordered.push({ name, bytes });
  };
  for (const name of wanted) await visit(name, []);
  return ordered;
}
