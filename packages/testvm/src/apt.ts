import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArchProfile } from './arch.js';
import { buildOnce } from './cache.js';
import { execHost, type ExecResult } from './host-exec.js';

/**
 * apt for one architecture: `apt-cache` look-ups and `apt-get download`. Nothing is ever
 * installed through it; packages are unpacked with `dpkg -x` into the cache.
 */
export interface Apt {
  readonly debianArch: string;
  cache(args: readonly string[]): Promise<ExecResult>;
  download(packages: readonly string[], cwd: string): Promise<ExecResult>;
  /** Fetches fresh package lists (a download failing on an outdated list is retried after this). */
  refresh(): Promise<void>;
}

/** The host's own apt, for guests of the host's architecture. */
export function systemApt(debianArch: string): Apt {
  return {
    debianArch,
    cache: (args) => execHost('apt-cache', args),
    download: (packages, cwd) => execHost('apt-get', ['download', ...packages], { cwd }),
    refresh: async () => {
      if (process.getuid?.() === 0) await execHost('apt-get', ['update']).catch(() => undefined);
    },
  };
}

/** Options that point apt at a private state folder for `debianArch`. */
export function privateAptOptions(stateDir: string, debianArch: string): string[] {
  return [
    '-o', `APT::Architecture=${debianArch}`,
    '-o', `APT::Architectures::=${debianArch}`,
    '-o', `Dir::State::Lists=${join(stateDir, 'lists')}`,
    '-o', `Dir::State::status=${join(stateDir, 'status')}`,
    '-o', `Dir::Cache=${join(stateDir, 'cache')}`,
    // The folder is ours (under the testvm cache lock), not the system's.
    '-o', 'Debug::NoLocking=1',
  ];
}

async function initState(stateDir: string): Promise<void> {
  await mkdir(join(stateDir, 'lists', 'partial'), { recursive: true });
  await mkdir(join(stateDir, 'cache', 'archives', 'partial'), { recursive: true });
  await writeFile(join(stateDir, 'status'), ''); // nothing installed for this architecture
}

async function update(stateDir: string, debianArch: string): Promise<void> {
  await initState(stateDir);
  const res = await execHost('apt-get', [...privateAptOptions(stateDir, debianArch), 'update']);
  const lists = await readdir(join(stateDir, 'lists')).catch(() => [] as string[]);
  if (res.code !== 0 || !lists.some((f) => f.endsWith('_Packages') || f.includes('_Packages.'))) {
    throw new Error(`apt-get update for ${debianArch} failed: ${res.stderr.trim().slice(-500)}`);
  }
}

/**
 * apt for a foreign guest architecture, without touching the host's dpkg configuration
 * (no `dpkg --add-architecture`, no root): the host's sources.list with a private state
 * folder in the cache, whose package lists are fetched once and refreshed when a
 * download fails (Debian replaces kernel packages on security updates).
 */
export async function foreignApt(cache: string, profile: ArchProfile): Promise<Apt> {
  const stateDir = join(cache, 'apt', profile.debianArch);
  await buildOnce(stateDir, (tmp) => update(tmp, profile.debianArch));
  const options = privateAptOptions(stateDir, profile.debianArch);
  return {
    debianArch: profile.debianArch,
    cache: (args) => execHost('apt-cache', [...options, ...args]),
    download: (packages, cwd) => execHost('apt-get', [...options, 'download', ...packages], { cwd }),
    refresh: async () => {
      await rm(stateDir, { recursive: true, force: true });
      await buildOnce(stateDir, (tmp) => update(tmp, profile.debianArch));
    },
  };
}
