#!/usr/bin/env node
// What a stranger gets: `npm pack` every publishable workspace, install the tarballs in a
// fresh temp project with no compiler on PATH (only node and npm), then import (ESM) and
// require (CJS) every entry point, type-check a TypeScript file with NodeNext and with
// Bundler resolution (the repository's typescript), and make one real call per package
// (scripts/consumer/smoke.mjs; the addon must load from its prebuild).
//
//   node scripts/consumer-test.mjs [--prebuilds DIR | --reuse-build] [--qemu-arm64 NODE] [--keep]
//
// --prebuilds DIR: take prebuilds/ from DIR (scripts/prebuild.mjs --out DIR); default
//   native/prebuilds, and when that has none for this machine one is built into the staged
//   copy of @vmlink/native (the checkout's native/ is never written).
// --reuse-build: make this machine's prebuild from native/build/Release (stripped, named as
//   prebuildify names it) instead of compiling again: for CI, right after `npm run build`.
// --qemu-arm64 NODE: also run the ESM and CJS checks with an arm64 node binary under
//   qemu-aarch64-static, with Debian's arm64 libraries (/usr/aarch64-linux-gnu): the
//   linux-arm64 prebuild must then be among the prebuilds.
// Needs built packages (`npm run build`). Installs with --prefer-offline: the external
// dependencies (node-addon-api, node-gyp-build, vitest for @vmlink/compliance) come from
// npm's cache when `npm ci` has put them there.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { arch as hostArch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, publishableWorkspaces } from './lib/workspaces.mjs';
import { prebuild, prebuildFromLocalBuild } from './prebuild.mjs';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (message) => console.log(`consumer-test: ${message} (${elapsed()})`);

function parseArgs(argv) {
  const options = { prebuilds: undefined, qemuNode: undefined, keep: false, reuseBuild: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--prebuilds') options.prebuilds = argv[++i];
    else if (argv[i] === '--qemu-arm64') options.qemuNode = argv[++i];
    else if (argv[i] === '--keep') options.keep = true;
    else if (argv[i] === '--reuse-build') options.reuseBuild = true;
    else throw new Error(`consumer-test: unknown argument ${JSON.stringify(argv[i])}`);
  }
  return options;
}

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
    throw new Error(`${command} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}):\n${output}`);
  }
  return result.stdout;
}

/** run(), without blocking: the two type-checks share the cores. */
function runAsync(command, args, options) {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed (exit ${error.code}):\n${`${stdout}${stderr}`.trim()}`));
      else resolve(stdout);
    });
  });
}

/** A bin dir holding only node, npm, npx and sh (for install scripts): no g++, cc, make or python3. */
function compilerFreePath(work) {
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  for (const tool of ['npm', 'npx']) {
    const found = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    symlinkSync(realpathSync(found), join(bin, tool));
  }
  for (const tool of ['g++', 'c++', 'gcc', 'cc', 'make', 'python3', 'python']) {
    if (spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env: { PATH: bin } }).status === 0) {
      throw new Error(`consumer-test: ${tool} is reachable on the compiler-free PATH ${bin}`);
    }
  }
  return bin;
}

/** Copies @vmlink/native's published files and the prebuilds into a staging dir to pack. */
async function stageNative(work, { pkg }, prebuildsFrom, reuseBuild) {
  const stage = join(work, 'stage', 'native');
  mkdirSync(stage, { recursive: true });
  for (const entry of ['package.json', ...pkg.files.filter((file) => file !== 'prebuilds')]) {
    if (existsSync(join(ROOT, 'native', entry))) cpSync(join(ROOT, 'native', entry), join(stage, entry), { recursive: true });
  }
  const source = join(prebuildsFrom ?? join(ROOT, 'native'), 'prebuilds');
  if (existsSync(source)) cpSync(source, join(stage, 'prebuilds'), { recursive: true });
  const ownTuple = join(stage, 'prebuilds', `linux-${hostArch()}`);
  if (!existsSync(ownTuple) || readdirSync(ownTuple).length === 0) {
    if (prebuildsFrom !== undefined) throw new Error(`consumer-test: ${source} has no linux-${hostArch()} prebuild`);
    if (reuseBuild) {
      prebuildFromLocalBuild(stage);
      log(`made the linux-${hostArch()} prebuild from native/build/Release (stripped)`);
    } else {
      log(`no linux-${hostArch()} prebuild in native/prebuilds: building one (prebuildify) into the staged copy`);
      await prebuild(hostArch(), stage);
    }
  }
  const tuples = readdirSync(join(stage, 'prebuilds')).map((tuple) => `${tuple}/${readdirSync(join(stage, 'prebuilds', tuple)).join(',')}`);
  log(`staged @vmlink/native with prebuilds ${tuples.join(' ')}`);
  return stage;
}

function packAll(work, publishable, nativeStage) {
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const workspaceArgs = publishable.filter(({ pkg }) => pkg.name !== '@vmlink/native').flatMap(({ pkg }) => ['-w', pkg.name]);
  const packed = [
    ...JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs, ...workspaceArgs], { cwd: ROOT })),
    ...JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs, nativeStage], { cwd: ROOT })),
  ];
  return new Map(packed.map((entry) => [entry.name, join(tarballs, entry.filename)]));
}

/** package.json of the consumer: every tarball, with @vmlink/* dependencies pinned to them too. */
function consumerManifest(tarballs) {
  const specs = Object.fromEntries([...tarballs].map(([name, file]) => [name, `file:${file}`]));
  return { name: 'vmlink-consumer', version: '1.0.0', private: true, type: 'module', dependencies: specs, overrides: specs };
}

/**
 * Every entry point the packages offer (subpaths of their exports maps), and whether
 * its exports entry offers CommonJS (a `require` or `default` condition).
 */
function entryPoints(publishable) {
  const entries = [];
  for (const { pkg } of publishable) {
    const exportsMap = pkg.exports && typeof pkg.exports === 'object' ? pkg.exports : { '.': pkg.exports ?? pkg.main };
    for (const [subpath, target] of Object.entries(exportsMap)) {
      if (!subpath.startsWith('.') || subpath === './package.json') continue;
      const specifier = subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`;
      const require = typeof target === 'string' || (target !== null && typeof target === 'object' && ('require' in target || 'default' in target));
      entries.push({ specifier, require });
    }
  }
  return entries;
}

function writeConsumerFiles(app) {
  for (const file of ['smoke.mjs', 'smoke.cjs', 'types.mts', 'types.cts']) cpSync(join(ROOT, 'scripts', 'consumer', file), join(app, file));
  const common = {
    target: 'ES2022',
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
  };
  writeFileSync(join(app, 'tsconfig.nodenext.json'), JSON.stringify({ compilerOptions: { ...common, module: 'NodeNext', moduleResolution: 'NodeNext' }, files: ['types.mts', 'types.cts'] }, null, 2));
  writeFileSync(join(app, 'tsconfig.bundler.json'), JSON.stringify({ compilerOptions: { ...common, module: 'ESNext', moduleResolution: 'Bundler' }, files: ['types.mts'] }, null, 2));
}

function qemuChecks(app, env, qemuNode) {
  const sysroot = '/usr/aarch64-linux-gnu';
  for (const [what, path] of [['qemu-aarch64-static (apt-get install qemu-user-static)', '/usr/bin/qemu-aarch64-static'], [`Debian's arm64 libraries (apt-get install libc6-arm64-cross libstdc++6-arm64-cross)`, join(sysroot, 'lib', 'ld-linux-aarch64.so.1')], ['the arm64 node binary', qemuNode]]) {
    if (!existsSync(path)) throw new Error(`consumer-test: --qemu-arm64 needs ${what}: ${path} is missing`);
  }
  const arch = run('/usr/bin/qemu-aarch64-static', ['-L', sysroot, qemuNode, '-p', 'process.arch + " " + process.version'], { cwd: app, env }).trim();
  log(`under qemu-aarch64: node reports ${arch}`);
  if (!arch.startsWith('arm64 ')) throw new Error(`consumer-test: ${qemuNode} under qemu reports ${arch}, not arm64`);
  const qemuEnv = { ...env, VMLINK_CONSUMER_UNDER_QEMU: '1' };
  process.stdout.write(run('/usr/bin/qemu-aarch64-static', ['-L', sysroot, qemuNode, 'smoke.mjs'], { cwd: app, env: qemuEnv }));
  process.stdout.write(run('/usr/bin/qemu-aarch64-static', ['-L', sysroot, qemuNode, 'smoke.cjs'], { cwd: app, env: qemuEnv }));
  log('arm64 (qemu-user): ESM and CJS checks passed');
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const publishable = publishableWorkspaces();
  const native = publishable.find(({ pkg }) => pkg.name === '@vmlink/native');
  for (const { dir, pkg } of publishable) {
    if (pkg.files?.includes('dist') && !existsSync(join(ROOT, dir, 'dist'))) throw new Error(`consumer-test: ${dir}/dist is missing; run \`npm run build\` first`);
  }
  const work = mkdtempSync(join(tmpdir(), 'vmlink-consumer-test-'));
  try {
    const nativeStage = await stageNative(work, native, options.prebuilds, options.reuseBuild);
    const tarballs = packAll(work, publishable, nativeStage);
    log(`packed ${tarballs.size} tarballs`);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify(consumerManifest(tarballs), null, 2));
    const env = { PATH: compilerFreePath(work), HOME: process.env.HOME ?? '/root', npm_config_update_notifier: 'false', TMPDIR: tmpdir() };
    const installLog = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'warn'], { cwd: app, env });
    log(`installed in a fresh project with PATH=${env.PATH} (node, npm, npx, sh)${installLog.trim() ? `:\n${installLog.trim()}` : ''}`);

    writeFileSync(join(app, 'entry-points.json'), JSON.stringify(entryPoints(publishable)));
    writeFileSync(join(app, 'commands.json'), JSON.stringify(publishable.flatMap(({ pkg }) => Object.keys(typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : pkg.bin ?? {}).map((command) => ({ package: pkg.name, command })))));
    writeConsumerFiles(app);
    process.stdout.write(run(process.execPath, ['smoke.mjs'], { cwd: app, env }));
    log('ESM imports and one real call per package passed');
    process.stdout.write(run(process.execPath, ['smoke.cjs'], { cwd: app, env }));
    log('CJS require() of every entry point passed');
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await Promise.all(['tsconfig.nodenext.json', 'tsconfig.bundler.json'].map(async (config) => {
      await runAsync(process.execPath, [tsc, '-p', config], { cwd: app, env });
      log(`tsc -p ${config} passed (skipLibCheck off: the packages' .d.ts are checked too)`);
    }));
    if (options.qemuNode !== undefined) qemuChecks(app, env, realpathSync(options.qemuNode));
    log(`all ${tarballs.size} packages install and work from their tarballs`);
  } finally {
    if (options.keep) console.log(`consumer-test: kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
