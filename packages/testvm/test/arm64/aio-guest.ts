// The aio compliance suite inside the arm64 guest (the io_submit backend, which qemu-user
// cannot run: it has no io_setup). On a real file system of the guest kernel: ext4 on a
// loop device, so O_DIRECT is real and its alignment is what the arm64 kernel reports
// through statx(STATX_DIOALIGN) (the guest's / and /tmp are tmpfs, which on Debian 12's
// 6.1 kernel refuses O_DIRECT). Debian builds loop and ext4 as modules and testvm's
// initramfs carries only its own, so the test fetches them from the same kernel package
// (testvm's kernel cache, its own entry) and loads them with insmod from the share.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import type { Vm } from '@vmlink/testvm';
import { foreignApt } from '../../src/apt.js';
import { archProfile } from '../../src/arch.js';
import { cacheRoot } from '../../src/cache.js';
import { getKernel } from '../../src/kernel.js';
import { repoRoot } from '../helpers.js';

const execFileAsync = promisify(execFile);
const gzipAsync = promisify(gzip);

/**
 * What ext4 on a loop device needs beyond testvm's modules (their dependencies come from
 * modinfo). crc32c_generic: 6.1's ext4 loads the crc32c driver at every mount ("Cannot load
 * crc32c driver" without it). A cache entry of its own next to testvm's (getKernel keeps the
 * two newest arm64 entries: this one and the guest's).
 */
export const AIO_GUEST_MODULES = ['loop', 'crc32c_generic', 'ext4'] as const;
/** Room for the suite's files (its largest are a few MiB); the image lives in the guest's RAM. */
const IMAGE_MIB = 64;
const SUITE_SOURCE = join(import.meta.dirname, 'guest', 'aio-iosubmit.suite.ts');

/** Everything the guest needs, in a folder under the shared repository (.cache/ is git-ignored). */
export interface AioGuestBundle {
  /** The folder (same path in the guest, through the repository share). */
  dir: string;
  /** The kernel release the modules are for: must be the guest's. */
  release: string;
  /** Module files in insmod order. */
  modules: string[];
  /** The empty ext4 image, gzip'ed (it is unpacked into the guest's RAM). */
  imageGz: string;
  /** The bundled suite (ESM) and where run-suite.mjs writes its summary. */
  suite: string;
  report: string;
  remove(): Promise<void>;
}

/**
 * Prepares the guest run on the host: the modules (the first time this downloads the arm64
 * kernel package once more, ~20 s), an empty ext4 image made by the host's mkfs.ext4
 * (e2fsprogs; busybox's mke2fs makes ext2, whose files have no extents: no punch-hole),
 * and the suite bundled with esbuild.
 */
export async function prepareAioGuestRun(): Promise<AioGuestBundle> {
  const profile = archProfile('arm64');
  const cache = cacheRoot();
  const kernel = await getKernel(cache, profile, AIO_GUEST_MODULES, await foreignApt(cache, profile));
  await mkdir(join(repoRoot, '.cache'), { recursive: true });
  const dir = await mkdtemp(join(repoRoot, '.cache', 'testvm-arm64-aio-'));
  try {
    const modules: string[] = [];
    for (const name of kernel.modules) {
      const file = join(dir, `${name}.ko`);
      await copyFile(join(kernel.dir, 'modules', `${name}.ko`), file);
      modules.push(file);
    }
    const image = join(dir, 'ext4.img');
    await execFileAsync('mkfs.ext4', ['-q', '-F', '-L', 'vmlink-aio', image, `${IMAGE_MIB}M`]).catch((error: unknown) => {
      throw new Error(`mkfs.ext4 (Debian package e2fsprogs) could not make the guest's ext4 image: ${String((error as { stderr?: string }).stderr ?? error)}`);
    });
    const imageGz = `${image}.gz`;
    await writeFile(imageGz, await gzipAsync(await readFile(image), { level: 1 }));
    await rm(image);
    const suite = join(dir, 'aio-iosubmit.suite.mjs');
    await build({
      entryPoints: [SUITE_SOURCE],
      outfile: suite,
      bundle: true,
      packages: 'external', // resolved in the guest from the repository's node_modules (built dist, the prebuild)
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'warning',
      define: { 'import.meta.url': JSON.stringify(pathToFileURL(SUITE_SOURCE).href) },
    });
    return { dir, release: kernel.release, modules, imageGz, suite, report: join(dir, 'report.json'), remove: () => rm(dir, { recursive: true, force: true }) };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Shell for the guest: load the modules, unpack the image into RAM, mount it on `mountPoint`; prints the mount line. */
function mountScript(bundle: AioGuestBundle, mountPoint: string): string {
  return [
    'set -e',
    ...bundle.modules.map((file) => `insmod '${file}'`),
    `gunzip -c '${bundle.imageGz}' > /tmp/vmlink-aio-ext4.img`,
    `mkdir -p '${mountPoint}'`,
    `mount -t ext4 -o loop /tmp/vmlink-aio-ext4.img '${mountPoint}'`,
    `grep ' ${mountPoint} ' /proc/mounts`,
  ].join('\n');
}

/** What an O_DIRECT file on the mount reports, next to the loop device's logical block size and the kernel's page size. */
function probeSource(mountPoint: string, loopDevice: string): string {
  return `import { writeFileSync, readFileSync, constants } from 'node:fs';
    import { O_DIRECT, createFsBackend } from '@vmlink/aio';
    const path = '${mountPoint}/alignment-probe';
    writeFileSync(path, Buffer.alloc(8192));
    const backend = createFsBackend();
    const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
    const pageKiB = Number(/KernelPageSize:\\s+(\\d+)/.exec(readFileSync('/proc/self/smaps', 'utf8'))?.[1]);
    const logicalBlock = Number(readFileSync('/sys/block/${loopDevice}/queue/logical_block_size', 'utf8'));
    console.log(JSON.stringify({ direct: file.direct, alignment: file.alignment, logicalBlock, pageKiB }));
    await file.close();
    await backend.close();`;
}

/** run-suite.mjs's summary (scripts/qemu-user/run-suite.mjs). */
export interface SuiteReport {
  passed: number;
  failed: number;
  skipped: number;
  gaps: number;
  ms: number;
}

export interface AioProbe {
  direct: boolean;
  alignment: { memory: number; offset: number; length: number };
  logicalBlock: number;
  pageKiB: number;
}

export interface AioGuestOutcome {
  probe: AioProbe;
  exitCode: number;
  /** The per-test lines run-suite.mjs printed, and its stderr. */
  output: string;
  report: SuiteReport | undefined;
  ms: number;
}

/**
 * In the guest: mount ext4 on `mountPoint`, probe O_DIRECT there, then run the bundled
 * suite with the repository root as cwd (its child-process test resolves packages there).
 * Throws when a step before the suite fails (the message says which).
 */
export async function runAioInGuest(vm: Vm, bundle: AioGuestBundle, mountPoint: string, timeoutMs: number): Promise<AioGuestOutcome> {
  // The modules come from the kernel package of testvm's cache: they load only into the same kernel.
  if (bundle.release !== vm.info.release) throw new Error(`the loop/ext4 modules are for kernel ${bundle.release}, the guest runs ${vm.info.release}`);
  const mount = await vm.run('sh', ['-c', mountScript(bundle, mountPoint)], { timeoutMs: 120_000 });
  const loopDevice = /^\/dev\/(loop\d+) /m.exec(mount.stdout)?.[1];
  if (mount.exitCode !== 0 || loopDevice === undefined) throw new Error(`mounting ext4 on a loop device in the guest failed (${mount.exitCode}): ${mount.stdout}${mount.stderr}`);
  const probed = await vm.run('node', ['--input-type=module', '-e', probeSource(mountPoint, loopDevice)], { cwd: repoRoot, timeoutMs: 120_000 });
  if (probed.exitCode !== 0) throw new Error(`the O_DIRECT probe in the guest failed (${probed.exitCode}): ${probed.stderr}`);
  const probe = JSON.parse(probed.stdout) as AioProbe;
  const started = performance.now();
  // The default limits of tests and hooks that set none, raised as the suite's own (timeoutScale).
  const limits = ['--test-timeout', '300000', '--hook-timeout', '600000'];
  const res = await vm.run('node', [join(repoRoot, 'scripts', 'qemu-user', 'run-suite.mjs'), ...limits, '--report', bundle.report, bundle.suite], {
    cwd: repoRoot,
    env: { VMLINK_AIO_DIR: mountPoint },
    timeoutMs,
  });
  const report = await readFile(bundle.report, 'utf8').then((text) => JSON.parse(text) as SuiteReport, () => undefined);
  const output = [res.stdout, res.stderr].filter((s) => s !== '').join('\n--- stderr ---\n');
  return { probe, exitCode: res.exitCode, output, report, ms: performance.now() - started };
}
