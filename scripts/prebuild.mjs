#!/usr/bin/env node
// Builds the addon's prebuilds (prebuildify --napi --strip --tag-libc) into
// native/prebuilds/linux-<arch>/ (or DIR/prebuilds/...), which ship inside @vmlink/native
// and load before any local build (so delete native/prebuilds/ when working on the C++).
// Usage: node scripts/prebuild.mjs [--arch x64] [--arch arm64] [--out DIR]
// (default: this machine's arch, into native/). arm64 on an x64 machine is cross-compiled with
// Debian's g++-aarch64-linux-gnu. The build runs in a copy of native/ so it never
// touches native/build (the workspace's own build, shared by everyone working here).
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, rmSync, symlinkSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch as hostArch, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from './lib/workspaces.mjs';

const require = createRequire(import.meta.url);
const NATIVE = join(ROOT, 'native');
const NAME = '@vmlink/native';

/** ELF e_machine values, to prove each prebuild is for the arch it claims. */
export const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 };
/** Cross toolchains by target arch (Debian package names), for builds on another arch. */
const CROSS = { arm64: { prefix: 'aarch64-linux-gnu-', debian: 'g++-aarch64-linux-gnu' } };

export function prebuildPath(arch, out = NATIVE) {
  return join(out, 'prebuilds', `linux-${arch}`, `${NAME.replace('/', '+')}.glibc.node`);
}

export function elfMachine(file) {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  if (header.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return header.readUInt16LE(18);
}

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** Environment for node-gyp: the toolchain and, when this node ships its headers, no download. */
function buildEnv(arch) {
  // node-gyp reads JOBS: prebuildify runs it without --jobs, which builds one file at a time.
  const env = { JOBS: 'max', ...process.env };
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
  if (arch !== hostArch()) {
    const cross = CROSS[arch];
    if (!cross) throw new Error(`prebuild: no cross toolchain known for ${arch} on ${hostArch()}`);
    if (!onPath(`${cross.prefix}g++`)) {
      throw new Error(`prebuild: ${cross.prefix}g++ is not installed; as root: apt-get install -y --no-install-recommends ${cross.debian}`);
    }
    Object.assign(env, {
      CC: `${cross.prefix}gcc`,
      CXX: `${cross.prefix}g++`,
      LINK: `${cross.prefix}g++`,
      AR: `${cross.prefix}ar`,
      PREBUILD_STRIP_BIN: `${cross.prefix}strip`,
    });
  }
  return env;
}

function prebuildify(options) {
  const run = require('prebuildify');
  return new Promise((resolve, reject) => run(options, (error) => (error ? reject(error) : resolve())));
}

/** Builds one arch's prebuild into `out`/prebuilds and returns its path. */
export async function prebuild(arch, out = NATIVE) {
  const work = mkdtempSync(join(tmpdir(), 'vmlink-prebuild-'));
  try {
    cpSync(join(NATIVE, 'binding.gyp'), join(work, 'binding.gyp'));
    cpSync(join(NATIVE, 'src'), join(work, 'src'), { recursive: true });
    // binding.gyp asks node for node-addon-api's include dir from the build's cwd.
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
    const env = buildEnv(arch);
    const saved = process.env;
    process.env = env; // prebuildify reads its PREBUILD_* settings from process.env
    try {
      await prebuildify({ cwd: work, out, arch, platform: 'linux', napi: true, strip: true, tagLibc: true, libc: 'glibc', name: NAME, quiet: process.env.CI !== 'true' && !process.argv.includes('--verbose'), stripBin: env.PREBUILD_STRIP_BIN ?? 'strip' });
    } finally {
      process.env = saved;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const file = prebuildPath(arch, out);
  if (!existsSync(file)) throw new Error(`prebuild: prebuildify finished but ${file} is missing`);
  if (elfMachine(file) !== ELF_MACHINE[arch]) throw new Error(`prebuild: ${file} is not an ${arch} ELF binary`);
  return file;
}

/**
 * The same file prebuildify would make for this machine (node-gyp Release build, stripped,
 * named by its tags), taken from the workspace's own build instead of compiling again:
 * for CI, where `npm run build` has just compiled native/ with the same flags.
 */
export function prebuildFromLocalBuild(out = NATIVE) {
  const built = join(NATIVE, 'build', 'Release', 'vmlink.node');
  if (!existsSync(built)) throw new Error(`prebuild: ${built} is missing; run \`npm run build -w @vmlink/native\` first`);
  const file = prebuildPath(hostArch(), out);
  mkdirSync(dirname(file), { recursive: true });
  cpSync(built, file);
  const strip = spawnSync('strip', ['--strip-all', file], { stdio: 'inherit' });
  if (strip.status !== 0) throw new Error(`prebuild: strip --strip-all ${file} failed`);
  if (elfMachine(file) !== ELF_MACHINE[hostArch()]) throw new Error(`prebuild: ${file} is not an ${hostArch()} ELF binary`);
  return file;
}

async function main() {
  const arches = [];
  let out = NATIVE;
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--arch') arches.push(args[++i]);
    else if (args[i].startsWith('--arch=')) arches.push(args[i].slice(7));
    else if (args[i] === '--out') out = resolve(args[++i]);
    else if (args[i] !== '--verbose') throw new Error(`prebuild: unknown argument ${JSON.stringify(args[i])} (use --arch x64|arm64, --out DIR, --verbose)`);
  }
  if (arches.length === 0) arches.push(hostArch());
  for (const arch of arches) {
    if (!(arch in ELF_MACHINE)) throw new Error(`prebuild: unsupported arch ${JSON.stringify(arch)} (x64, arm64)`);
  }
  mkdirSync(join(out, 'prebuilds'), { recursive: true });
  for (const arch of arches) {
    const started = Date.now();
    const file = await prebuild(arch, out);
    console.log(`prebuild: ${file} (${(statSync(file).size / 1024).toFixed(0)} KiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  main().catch((error) => {
    console.error(error.message);
    process.exit(1);
  });
}
