import { access, constants, lstat, readdir, readlink, stat } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join, posix, resolve } from 'node:path';
import { testVmError, TestVmErrorCode } from './errors.js';
import { execHost } from './host-exec.js';

/** Absolute path of an executable: `name` itself when it has a slash, else the first hit on PATH. */
export async function findExecutable(name: string, pathEnv: string = process.env.PATH ?? ''): Promise<string | undefined> {
  const candidates = name.includes('/') ? [resolve(name)] : pathEnv.split(delimiter).filter((d) => d !== '').map((d) => join(d, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // Not here; try the next PATH entry.
    }
  }
  return undefined;
}

export async function requireProgram(name: string): Promise<string> {
  const found = await findExecutable(name);
  if (found === undefined) {
    throw testVmError(TestVmErrorCode.PROGRAM_NOT_FOUND, `program '${name}' (asked for with withPrograms / --with) is not on this host's PATH`);
  }
  return found;
}

/** `withPrograms` names resolved to absolute host paths (ERR_VMLINK_TESTVM_PROGRAM_NOT_FOUND otherwise). */
export async function resolvePrograms(names: readonly string[]): Promise<string[]> {
  const resolved: string[] = [];
  for (const name of names) resolved.push(await requireProgram(name));
  return resolved;
}

/** Paths of the shared libraries `ldd` lists for a binary (none for a static one). */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const res = await execHost('ldd', [binary]);
  if (res.code !== 0) return []; // "not a dynamic executable"
  const libs: string[] = [];
  for (const line of res.stdout.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (match?.[1] !== undefined) libs.push(match[1]);
  }
  return libs;
}

/** A file system tree for the guest, built from host files that keep their paths. */
export type TreeNode =
  | { type: 'dir'; mode: number }
  | { type: 'file'; mode: number; source: string; size: number; mtimeMs: number; ino: number }
  | { type: 'data'; mode: number; data: Buffer }
  | { type: 'symlink'; target: string }
  | { type: 'chardev'; mode: number; major: number; minor: number };

const MAX_SYMLINK_HOPS = 40;

export class GuestTree {
  readonly nodes = new Map<string, TreeNode>([['/', { type: 'dir', mode: 0o755 }]]);

  /** Where `path` lands in the guest tree once the symlinks already in it are followed. */
  resolve(path: string, hops = 0): string {
    const parts = posix.normalize(path).split('/').filter((p) => p !== '');
    let current = '/';
    for (let i = 0; i < parts.length; i++) {
      const next = posix.join(current, parts[i] ?? '');
      const node = this.nodes.get(next);
      if (node?.type === 'symlink' && hops < MAX_SYMLINK_HOPS) {
        const target = posix.isAbsolute(node.target) ? node.target : posix.join(current, node.target);
        return this.resolve(posix.join(target, ...parts.slice(i + 1)), hops + 1);
      }
      current = next;
    }
    return current;
  }

  has(path: string): boolean {
    return this.nodes.has(this.resolve(path));
  }

  mkdirp(path: string, mode = 0o755): string {
    const real = this.resolve(path);
    const parts = real.split('/').filter((p) => p !== '');
    let current = '/';
    for (const part of parts) {
      current = posix.join(current, part);
      const node = this.nodes.get(current);
      if (node === undefined) this.nodes.set(current, { type: 'dir', mode });
      else if (node.type !== 'dir') throw new Error(`guest tree: ${current} is not a directory`);
    }
    return real;
  }

  private put(path: string, node: TreeNode): void {
    const real = posix.join(this.mkdirp(posix.dirname(path)), posix.basename(path));
    this.nodes.set(real, node);
  }

  addData(path: string, data: Buffer | string, mode = 0o644): void {
    this.put(path, { type: 'data', mode, data: Buffer.from(data) });
  }

  /** A host file placed at another path in the guest. */
  async addFileAs(path: string, hostSource: string, mode = 0o644): Promise<void> {
    const info = await stat(hostSource);
    this.put(path, { type: 'file', mode, source: hostSource, size: info.size, mtimeMs: info.mtimeMs, ino: info.ino });
  }

  addSymlink(path: string, target: string): void {
    this.put(path, { type: 'symlink', target });
  }

  addCharDevice(path: string, major: number, minor: number, mode = 0o600): void {
    this.put(path, { type: 'chardev', mode, major, minor });
  }

  /**
   * Copies a host file to the same path in the guest, recreating the host's symlinks on
   * the way (Debian's merged /usr: `/lib -> usr/lib`), so that every path the host's
   * `ldd` prints is valid in the guest too.
   */
  async addHostFile(hostPath: string, hops = 0): Promise<void> {
    if (!isAbsolute(hostPath)) throw new Error(`guest tree: ${hostPath} is not absolute`);
    if (hops > MAX_SYMLINK_HOPS) throw new Error(`guest tree: too many symlinks at ${hostPath}`);
    const parts = posix.normalize(hostPath).split('/').filter((p) => p !== '');
    let current = '/';
    for (let i = 0; i < parts.length; i++) {
      const next = posix.join(current, parts[i] ?? '');
      const info = await lstat(next);
      if (info.isSymbolicLink()) {
        const target = await readlink(next);
        if (!this.nodes.has(next)) this.nodes.set(next, { type: 'symlink', target });
        const followed = isAbsolute(target) ? target : join(dirname(next), target);
        await this.addHostFile(posix.join(followed, ...parts.slice(i + 1)), hops + 1);
        return;
      }
      if (i === parts.length - 1) {
        if (!info.isFile()) throw new Error(`guest tree: ${next} is not a regular file`);
        this.nodes.set(next, { type: 'file', mode: info.mode & 0o7777, source: next, size: info.size, mtimeMs: info.mtimeMs, ino: info.ino });
      } else if (!this.nodes.has(next)) {
        this.nodes.set(next, { type: 'dir', mode: info.mode & 0o7777 });
      }
      current = next;
    }
  }

  /**
   * Everything below a host folder at the same place below the guest's `/` (a foreign
   * guest's unpacked Debian packages): folders, files with their modes, symlinks as they are.
   */
  async addRootTree(hostRoot: string, guestDir = '/'): Promise<void> {
    const entries = await readdir(join(hostRoot, guestDir), { withFileTypes: true });
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const guestPath = posix.join(guestDir, entry.name);
      const hostPath = join(hostRoot, guestPath);
      if (entry.isSymbolicLink()) {
        this.addSymlink(guestPath, await readlink(hostPath));
      } else if (entry.isDirectory()) {
        this.mkdirp(guestPath, (await lstat(hostPath)).mode & 0o7777);
        await this.addRootTree(hostRoot, guestPath);
      } else if (entry.isFile()) {
        await this.addFileAs(guestPath, hostPath, (await lstat(hostPath)).mode & 0o7777);
      }
    }
  }

  /** A binary and every library it loads. */
  async addHostBinary(binary: string): Promise<void> {
    await this.addHostFile(binary);
    for (const lib of await sharedLibraries(binary)) await this.addHostFile(lib);
  }
}
