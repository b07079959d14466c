import { mkdir, readdir, readFile, writeFile, copyFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { ArchProfile } from './arch.js';
import { systemApt, type Apt } from './apt.js';
import { buildOnce, touchAndPrune, writeFileAtomic } from './cache.js';
import { testVmError, TestVmErrorCode } from './errors.js';
import { execHost } from './host-exec.js';
import { GUEST_MODULES, indexModules, resolveModules } from './kernel-modules.js';
import { extractVmlinux } from './vmlinux.js';

/** Bumped when the kernel cache entry's layout changes (v2: adds the unpacked vmlinux). */
const KERNEL_LAYOUT = 'v2';
const KEEP_KERNELS = 2;

/** A kernel unpacked into the cache: the image, its release and the guest's modules in load order. */
export interface GuestKernel {
  dir: string;
  /** What QEMU's -kernel gets: the unpacked ELF vmlinux (PVH boot) when there is one, else the bzImage. */
  image: string;
  release: string;
  /** Module names in insmod order; files are `<dir>/modules/<name>.ko`. */
  modules: string[];
  /** Identifies this kernel + module set for the initramfs cache key. */
  key: string;
}

interface KernelPackage {
  name: string;
  version: string;
}

function kernelNotFound(detail: string, meta: string, cause?: unknown): Error {
  return testVmError(
    TestVmErrorCode.KERNEL_NOT_FOUND,
    `cannot get a Debian kernel for the guest: ${detail}. Check that apt works: apt-get update && apt-cache depends ${meta}`,
    cause === undefined ? undefined : { cause },
  );
}

async function aptCacheDepends(apt: Apt, meta: string): Promise<string | undefined> {
  const res = await apt.cache(['depends', meta]).catch(() => undefined);
  if (res === undefined || res.code !== 0) return undefined;
  const match = /Depends:\s*(linux-image-[^\s<>]+)/.exec(res.stdout);
  return match?.[1];
}

/** The versioned package `linux-image-<arch>` depends on, running `apt-get update` once if apt knows nothing. */
export async function resolveKernelPackage(profile: ArchProfile, apt: Apt = systemApt(profile.debianArch)): Promise<KernelPackage> {
  let name = await aptCacheDepends(apt, profile.kernelMetaPackage);
  if (name === undefined) {
    await apt.refresh();
    name = await aptCacheDepends(apt, profile.kernelMetaPackage);
  }
  if (name === undefined) throw kernelNotFound(`apt-cache does not know ${profile.kernelMetaPackage}`, profile.kernelMetaPackage);
  const show = await apt.cache(['show', '--no-all-versions', name]);
  const version = /^Version:\s*(\S+)/m.exec(show.stdout)?.[1];
  if (version === undefined) throw kernelNotFound(`apt-cache show ${name} gives no version`, profile.kernelMetaPackage);
  return { name, version };
}

async function unpackKernel(profile: ArchProfile, apt: Apt, pkg: KernelPackage, modules: readonly string[], out: string): Promise<void> {
  const work = join(out, 'work');
  await mkdir(work, { recursive: true });
  const download = await apt.download([`${pkg.name}=${pkg.version}`], work);
  const debs = (await readdir(work)).filter((f) => f.endsWith('.deb'));
  const deb = debs[0];
  if (download.code !== 0 || deb === undefined) {
    throw kernelNotFound(`apt-get download ${pkg.name} failed: ${download.stderr.trim()}`, profile.kernelMetaPackage);
  }
  const tree = join(work, 'tree');
  const unpack = await execHost('dpkg', ['-x', join(work, deb), tree]);
  if (unpack.code !== 0) throw kernelNotFound(`dpkg -x ${deb} failed: ${unpack.stderr.trim()}`, profile.kernelMetaPackage);

  const boot = await readdir(join(tree, 'boot'));
  const image = boot.find((f) => f.startsWith('vmlinuz-'));
  if (image === undefined) throw kernelNotFound(`${deb} has no /boot/vmlinuz-*`, profile.kernelMetaPackage);
  const release = image.slice('vmlinuz-'.length);
  await copyFile(join(tree, 'boot', image), join(out, 'vmlinuz'));
  if (profile.kernelBoot === 'pvh') await extractVmlinux(join(out, 'vmlinuz'), join(out, 'vmlinux'));

  const index = await indexModules(join(tree, 'lib', 'modules', release, 'kernel'));
  const resolved = await resolveModules(index, modules);
  await mkdir(join(out, 'modules'));
  for (const mod of resolved) await writeFile(join(out, 'modules', `${mod.name}.ko`), mod.bytes);
  await writeFile(join(out, 'modules.order'), resolved.map((m) => m.name).join('\n') + '\n');
  await writeFile(join(out, 'release'), release);
  // Only the image and a handful of modules are kept; the unpacked tree is ~400 MB.
  await rm(work, { recursive: true, force: true });
}

async function loadKernel(dir: string): Promise<GuestKernel> {
  const release = (await readFile(join(dir, 'release'), 'utf8')).trim();
  const modules = (await readFile(join(dir, 'modules.order'), 'utf8')).split('\n').filter((l) => l !== '');
  const vmlinux = join(dir, 'vmlinux');
  const image = (await stat(vmlinux).then(() => true, () => false)) ? vmlinux : join(dir, 'vmlinuz');
  return { dir, image, release, modules, key: dir };
}

/**
 * Whether a kernel cache entry is an older one of the same arch AND module set. Each module
 * set (the default guest, one with the vhost-user vsock driver, the arm64 aio guest's...) is
 * its own line: pruning across sets made three amd64 sets evict each other, rebuilding one
 * on most boots and deleting a kernel another test process had just resolved and was about
 * to hand to QEMU.
 */
export function sameKernelLine(entry: string, debianArch: string, modulesKey: string): boolean {
  return entry.startsWith('linux-image-') && entry.includes(`-${debianArch}_`) && entry.includes(`_${modulesKey}`);
}

/**
 * The guest kernel from the cache, fetched with `apt-get download` + `dpkg -x` the first
 * time. The resolved package is remembered in `kernel/current.json` so later boots skip
 * apt-cache (~1 s); delete the cache folder to pick up a newer Debian kernel.
 */
export async function getKernel(
  cache: string,
  profile: ArchProfile,
  modules: readonly string[] = GUEST_MODULES,
  apt: Apt = systemApt(profile.debianArch),
): Promise<GuestKernel> {
  const modulesKey = createHash('sha256').update(modules.join(',')).digest('hex').slice(0, 12);
  const currentFile = join(cache, 'kernel', `current-${profile.kernelMetaPackage}-${modulesKey}-${KERNEL_LAYOUT}.json`);
  try {
    const current = JSON.parse(await readFile(currentFile, 'utf8')) as { dir: string };
    return await loadKernel(current.dir);
  } catch {
    // Not resolved yet, or the cache was cleaned: resolve again.
  }
  let pkg = await resolveKernelPackage(profile, apt);
  const dirOf = (p: KernelPackage): string => join(cache, 'kernel', `${p.name}_${p.version}_${modulesKey}_${KERNEL_LAYOUT}`);
  try {
    await buildOnce(dirOf(pkg), (tmp) => unpackKernel(profile, apt, pkg, modules, tmp)).catch(async (err: unknown) => {
      if ((err as { code?: string }).code !== TestVmErrorCode.KERNEL_NOT_FOUND) throw err;
      // An outdated package list names a kernel the mirror no longer has: refresh once.
      await apt.refresh();
      pkg = await resolveKernelPackage(profile, apt);
      await buildOnce(dirOf(pkg), (tmp) => unpackKernel(profile, apt, pkg, modules, tmp));
    });
  } catch (err) {
    if ((err as { code?: string }).code === TestVmErrorCode.KERNEL_NOT_FOUND) throw err;
    throw kernelNotFound(`unpacking ${pkg.name} failed: ${(err as Error).message}`, profile.kernelMetaPackage, err);
  }
  const dir = dirOf(pkg);
  await writeFileAtomic(currentFile, JSON.stringify({ dir, package: pkg }));
  // Older kernels (and older cache layouts) of this module set go once a new one is in place.
  await touchAndPrune(dir, KEEP_KERNELS, (name) => sameKernelLine(name, profile.debianArch, modulesKey));
  return loadKernel(dir);
}
