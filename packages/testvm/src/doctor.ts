import { constants } from 'node:fs';
import { access, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { archProfile, hostPackagesFor, isForeign, type ArchProfile } from './arch.js';
import { cacheRoot } from './cache.js';
import { findExecutable } from './host-files.js';
import { resolveKernelPackage } from './kernel.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** False for checks that only inform (KVM, optional tools). */
  required: boolean;
  detail: string;
  /** The Debian package that fixes a failed check. */
  fixPackage?: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
  /** Debian packages to install for the failed required checks. */
  missingPackages: string[];
  ok: boolean;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

async function programCheck(name: string, program: string, fixPackage: string, required = true): Promise<DoctorCheck> {
  const found = await findExecutable(program);
  return { name, ok: found !== undefined, required, detail: found ?? `${program} not on PATH`, fixPackage };
}

async function kernelCheck(profile: ArchProfile): Promise<DoctorCheck> {
  const cache = cacheRoot();
  const cached = await readdir(join(cache, 'kernel')).catch(() => [] as string[]);
  const kernels = cached.filter((f) => f.startsWith('linux-image-') && f.includes(`-${profile.debianArch}_`) && !f.includes('.tmp-') && !f.endsWith('.lock'));
  if (kernels.length > 0) return { name: 'guest kernel', ok: true, required: true, detail: `cached in ${join(cache, 'kernel', kernels[0] ?? '')}` };
  if (isForeign(profile)) {
    // Resolving it needs the foreign package lists (an apt-get update of ~10 MB): leave that to the first boot.
    return { name: 'guest kernel', ok: true, required: true, detail: `not cached yet; the first boot fetches ${profile.kernelMetaPackage}'s kernel with apt-get download (private ${profile.debianArch} package lists in the cache)` };
  }
  try {
    const pkg = await resolveKernelPackage(profile);
    return { name: 'guest kernel', ok: true, required: true, detail: `not cached yet; the first boot fetches ${pkg.name} ${pkg.version} with apt-get download` };
  } catch (err) {
    return { name: 'guest kernel', ok: false, required: true, detail: (err as Error).message };
  }
}

/** Opening /dev/kvm read-write is the first condition; whether a guest then boots is a separate probe. */
async function kvmCheck(): Promise<DoctorCheck> {
  try {
    const handle = await open('/dev/kvm', 'r+');
    await handle.close();
    return {
      name: '/dev/kvm',
      ok: true,
      required: false,
      detail: "opens read-write; guests still use TCG unless accel: 'kvm' (run `vmlink-testvm doctor --probe-kvm` to try a boot)",
    };
  } catch (err) {
    return { name: '/dev/kvm', ok: false, required: false, detail: `not usable (${(err as NodeJS.ErrnoException).code ?? 'error'}); guests use TCG` };
  }
}

export interface DoctorOptions {
  /** The guest architecture to check for; default the host's. */
  arch?: string;
}

/** What the host has and lacks for booting the test guest (of `arch`). */
export async function doctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const arch = options.arch ?? process.arch;
  let profile: ArchProfile | undefined;
  try {
    profile = archProfile(arch);
    const detail = isForeign(profile) ? `${arch} guest on a ${process.arch} host (emulated: TCG)` : arch;
    checks.push({ name: 'architecture', ok: true, required: true, detail });
  } catch (err) {
    checks.push({ name: 'architecture', ok: false, required: true, detail: (err as Error).message });
  }
  if (profile !== undefined) {
    checks.push(await programCheck('QEMU', profile.qemuBinary, profile.qemuPackages[0] ?? 'qemu-system'));
    if (profile.firmwareFile !== undefined) {
      checks.push({
        name: 'qboot firmware',
        ok: await fileExists(profile.firmwareFile),
        required: true,
        detail: profile.firmwareFile,
        fixPackage: 'qemu-system-data',
      });
    }
    if (isForeign(profile)) checks.push(await programCheck(`npm (fetches ${profile.nodePackage} for the guest)`, 'npm', 'npm'));
  }
  checks.push(await programCheck('busybox (static)', 'busybox', 'busybox-static'));
  checks.push(await programCheck('socat (guest vsock peer)', 'socat', 'socat', false));
  checks.push(await programCheck('apt-get', 'apt-get', 'apt'));
  checks.push(await programCheck('dpkg', 'dpkg', 'dpkg'));
  checks.push(await programCheck('ldd', 'ldd', 'libc-bin'));
  checks.push(await programCheck('setpriv (kills QEMU if its supervisor dies)', 'setpriv', 'util-linux', false));
  if (profile !== undefined) checks.push(await kernelCheck(profile));
  checks.push(await kvmCheck());
  const missingPackages = [
    ...new Set(checks.filter((c) => !c.ok && c.fixPackage !== undefined && (c.required || hostPackagesFor(profile ?? archProfile('x64')).includes(c.fixPackage))).map((c) => c.fixPackage as string)),
  ];
  return { checks, missingPackages, ok: checks.every((c) => c.ok || !c.required) };
}
