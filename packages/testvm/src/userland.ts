import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ArchProfile } from './arch.js';
import type { Apt } from './apt.js';
import { buildOnce, touchAndPrune, writeFileAtomic } from './cache.js';
import { testVmError, TestVmErrorCode } from './errors.js';
import { execHost } from './host-exec.js';

/**
 * What a foreign guest's userland is made of, besides the programs asked for: the C
 * and C++ runtimes node links against, and busybox for /init and the shell tools.
 */
export const BASE_GUEST_PACKAGES = ['libc6', 'libstdc++6', 'libgcc-s1', 'busybox-static'] as const;

/** Programs whose Debian package is not named like the program. */
const PROGRAM_PACKAGES: Readonly<Record<string, string>> = {};

const KEEP_USERLANDS = 4;
const PROGRAM_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'];

/** A foreign guest's root: Debian packages of its architecture, unpacked with dpkg -x. */
export interface Userland {
  /** Host folder whose contents become the guest's `/`. */
  root: string;
  /** Guest paths of the programs asked for. */
  programs: string[];
  /** package=version list, for cache keys. */
  key: string;
}

function userlandError(message: string): Error {
  return testVmError(TestVmErrorCode.BUILD_FAILED, message);
}

/** `apt-cache depends --recurse` names: the packages and everything they need, no virtual ones. */
export function parseRecursiveDepends(stdout: string): string[] {
  const names = new Set<string>();
  for (const line of stdout.split('\n')) {
    if (line === '' || line.startsWith(' ') || line.startsWith('<')) continue;
    names.add(line.trim());
  }
  return [...names].sort();
}

/** `apt-cache show --no-all-versions` records: package -> version. */
export function parseVersions(stdout: string): Map<string, string> {
  const versions = new Map<string, string>();
  for (const record of stdout.split(/\n\n+/)) {
    const name = /^Package:\s*(\S+)/m.exec(record)?.[1];
    const version = /^Version:\s*(\S+)/m.exec(record)?.[1];
    if (name !== undefined && version !== undefined && !versions.has(name)) versions.set(name, version);
  }
  return versions;
}

export function programPackage(program: string): string {
  return PROGRAM_PACKAGES[program] ?? program;
}

async function resolvePackages(apt: Apt, wanted: readonly string[]): Promise<Map<string, string>> {
  const depends = await apt.cache([
    'depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances',
    ...wanted,
  ]);
  if (depends.code !== 0) throw userlandError(`apt-cache depends for ${apt.debianArch} failed: ${depends.stderr.trim().slice(-400)}`);
  const names = parseRecursiveDepends(depends.stdout);
  const show = await apt.cache(['show', '--no-all-versions', ...names]);
  const versions = parseVersions(show.stdout);
  const missing = wanted.filter((w) => !versions.has(w));
  if (missing.length > 0) throw userlandError(`Debian has no ${apt.debianArch} package ${missing.join(', ')}`);
  return versions;
}

async function unpack(apt: Apt, versions: Map<string, string>, out: string): Promise<void> {
  const debs = join(out, 'debs');
  await mkdir(debs, { recursive: true });
  const download = await apt.download([...versions].map(([name, version]) => `${name}=${version}`), debs);
  if (download.code !== 0) throw userlandError(`apt-get download (${apt.debianArch}) failed: ${download.stderr.trim().slice(-400)}`);
  const root = join(out, 'root');
  for (const deb of (await readdir(debs)).filter((f) => f.endsWith('.deb')).sort()) {
    const res = await execHost('dpkg', ['-x', join(debs, deb), root]);
    if (res.code !== 0) throw userlandError(`dpkg -x ${deb} failed: ${res.stderr.trim()}`);
  }
  await rm(debs, { recursive: true, force: true });
}

async function findProgram(root: string, program: string): Promise<string | undefined> {
  for (const dir of PROGRAM_DIRS) {
    const guestPath = `${dir}/${program}`;
    if (await stat(join(root, guestPath)).then((s) => s.isFile(), () => false)) return guestPath;
  }
  return undefined;
}

/**
 * The unpacked userland for a foreign guest with `programs` (names, packaged by Debian
 * under the same name, e.g. 'socat'), from the cache when the same package versions were
 * unpacked before.
 */
export async function getUserland(cache: string, profile: ArchProfile, apt: Apt, programs: readonly string[], refreshed = false): Promise<Userland> {
  for (const program of programs) {
    if (program.includes('/')) {
      throw testVmError(
        TestVmErrorCode.PROGRAM_NOT_FOUND,
        `program '${program}': a ${profile.nodeArch} guest takes program names (Debian packages of its architecture), not host paths`,
      );
    }
  }
  const wanted = [...BASE_GUEST_PACKAGES, ...programs.map(programPackage)];
  // The resolved set is remembered (like the kernel's), so warm boots skip apt-cache (~1-3 s).
  const wantedKey = createHash('sha256').update(wanted.join(',')).digest('hex').slice(0, 12);
  const currentFile = join(cache, 'userland', `current-${profile.debianArch}-${wantedKey}.json`);
  if (!refreshed) {
    const remembered = await readFile(currentFile, 'utf8').then((t) => JSON.parse(t) as { dir: string }, () => undefined);
    if (remembered !== undefined && (await stat(join(remembered.dir, 'root')).then(() => true, () => false))) {
      return withPrograms(remembered.dir, profile, programs, basename(remembered.dir));
    }
  }
  let versions: Map<string, string>;
  try {
    versions = await resolvePackages(apt, wanted);
  } catch (err) {
    if (programs.length === 0) throw err;
    const unknown = [];
    for (const program of programs) {
      const show = await apt.cache(['show', '--no-all-versions', programPackage(program)]);
      if (show.code !== 0 || show.stdout.trim() === '') unknown.push(program);
    }
    if (unknown.length === 0) throw err;
    throw testVmError(
      TestVmErrorCode.PROGRAM_NOT_FOUND,
      `program '${unknown.join("', '")}' (asked for with withPrograms / --with) has no Debian ${profile.debianArch} package of that name`,
    );
  }
  const key = createHash('sha256').update([...versions].map(([n, v]) => `${n}=${v}`).join('\n')).digest('hex').slice(0, 16);
  const dir = join(cache, 'userland', `${profile.debianArch}-${key}`);
  try {
    await buildOnce(dir, (tmp) => unpack(apt, versions, tmp));
  } catch (err) {
    if (refreshed) throw err;
    // The package lists may be older than the mirror: fetch them again, then retry once.
    await apt.refresh();
    return getUserland(cache, profile, apt, programs, true);
  }
  await writeFileAtomic(currentFile, JSON.stringify({ dir }));
  await touchAndPrune(dir, KEEP_USERLANDS, (name) => name.startsWith(`${profile.debianArch}-`) && !name.startsWith('current-'));
  return withPrograms(dir, profile, programs, `${profile.debianArch}-${key}`);
}

async function withPrograms(dir: string, profile: ArchProfile, programs: readonly string[], key: string): Promise<Userland> {
  const root = join(dir, 'root');
  const found: string[] = [];
  for (const program of programs) {
    const guestPath = await findProgram(root, program);
    if (guestPath === undefined) {
      throw testVmError(TestVmErrorCode.PROGRAM_NOT_FOUND, `package ${programPackage(program)} (${profile.debianArch}) has no program '${basename(program)}' in ${PROGRAM_DIRS.join(' ')}`);
    }
    found.push(guestPath);
  }
  return { root, programs: found, key };
}
