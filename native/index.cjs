'use strict';
// Typed loader for the vmlink addon. Importing never throws: the binary is loaded on the
// first call to loadBinding(), and off Linux (or unbuilt) that call fails with a clear,
// coded error instead.
//
// Lookup order: a prebuild shipped in the package (prebuilds/<platform>-<arch>/, made by
// `prebuildify --napi --tag-libc`, matched by libc and tags the way node-gyp-build does),
// then a local build (build/Release, build/Debug) made by `npm rebuild @vmlink/native`.
// A candidate that fails to load (another glibc, a stale binary) falls through to the next.
//
// Run as a script (`node index.cjs install`, the package's install hook) it builds from
// source when `npm rebuild` asks for it, or when an installed copy has no usable prebuild.
const fs = require('node:fs');
const path = require('node:path');
const expected = require('./lib/expected-exports.cjs');

const NEEDS = 'needs python3, make and g++';
/** The oldest supported Node.js line (as in @vmlink/errors and `engines`). */
const MIN_NODE_MAJOR = 20;
const REBUILD = `run \`npm rebuild @vmlink/native\` to build it from source (${NEEDS})`;

let cached;

function codedError(code, message, cause) {
  const err = new Error(message, cause === undefined ? undefined : { cause });
  err.code = code;
  return err;
}

function missingExports(binding) {
  const missing = [];
  for (const [area, names] of Object.entries(expected)) {
    for (const name of names) if (!(name in binding)) missing.push(`${area}.${name}`);
  }
  return missing;
}

function readdir(dir) {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** glibc or musl, as node-gyp-build and prebuildify name them (musl has its own loader). */
function detectLibc() {
  if (process.env.LIBC === 'musl' || process.env.LIBC === 'glibc') return process.env.LIBC;
  const musl = fs.existsSync('/etc/alpine-release') || readdir('/lib').some((name) => name.startsWith('ld-musl-'));
  return musl ? 'musl' : 'glibc';
}

/** `linux-x64` or `linux-x64+arm64` -> { name, platform, arches }. */
function parseTuple(name) {
  const parts = name.split('-');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  const arches = parts[1].split('+');
  return arches.every(Boolean) ? { name, platform: parts[0], arches } : undefined;
}

/** `@vmlink+native.glibc.node` -> its tags (the first part is the package name, not a tag). */
function parseTags(file) {
  const parts = file.split('.');
  if (parts.length < 2 || parts.pop() !== 'node') return undefined;
  const tags = { file, specificity: 0 };
  for (const tag of parts.slice(1)) {
    if (tag === 'napi') tags.napi = true;
    else if (tag === 'node' || tag === 'electron' || tag === 'node-webkit') tags.runtime = tag;
    else if (tag.startsWith('abi')) tags.abi = tag.slice(3);
    else if (tag.startsWith('uv')) tags.uv = tag.slice(2);
    else if (tag.startsWith('armv')) tags.armv = tag.slice(4);
    else if (tag === 'glibc' || tag === 'musl') tags.libc = tag;
    else continue;
    tags.specificity++;
  }
  return tags;
}

function tagsMatch(tags, target) {
  if (tags.runtime !== undefined && tags.runtime !== 'node') return false;
  if (tags.abi !== undefined && tags.abi !== process.versions.modules) return false;
  if (tags.uv !== undefined && tags.uv !== process.versions.uv.split('.')[0]) return false;
  if (tags.armv !== undefined && tags.armv !== (target.arch === 'arm64' ? '8' : String(process.config.variables.arm_version ?? ''))) return false;
  if (tags.libc !== undefined && tags.libc !== target.libc) return false;
  return true;
}

function mtimeMs(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * The binaries to try, best first: matching prebuilds (single-arch folders before
 * multi-arch ones, more specific tags first), then local builds. A local build newer
 * than every matching prebuild goes first: someone built the C++ (or ran `npm rebuild`)
 * after the prebuilds were made, and a stale prebuild must not shadow that. Pure lookup:
 * reads directory listings and mtimes, loads nothing.
 */
function findBinaries(dir, target) {
  const candidates = [];
  const prebuilds = path.join(dir, 'prebuilds');
  const tuples = readdir(prebuilds)
    .map(parseTuple)
    .filter((tuple) => tuple !== undefined && tuple.platform === target.platform && tuple.arches.includes(target.arch))
    .sort((a, b) => a.arches.length - b.arches.length);
  for (const tuple of tuples) {
    const files = readdir(path.join(prebuilds, tuple.name))
      .map(parseTags)
      .filter((tags) => tags !== undefined && tagsMatch(tags, target))
      .sort((a, b) => b.specificity - a.specificity);
    for (const { file } of files) candidates.push({ kind: 'prebuild', file: path.join(prebuilds, tuple.name, file) });
  }
  const newestPrebuild = Math.max(0, ...candidates.map((candidate) => mtimeMs(candidate.file)));
  const fresh = [];
  for (const config of ['Release', 'Debug']) {
    for (const file of readdir(path.join(dir, 'build', config)).filter((name) => name.endsWith('.node'))) {
      const candidate = { kind: 'local build', file: path.join(dir, 'build', config, file) };
      if (mtimeMs(candidate.file) > newestPrebuild) fresh.push(candidate);
      else candidates.push(candidate);
    }
  }
  return newestPrebuild > 0 ? [...fresh, ...candidates] : [...candidates, ...fresh];
}

function firstLine(error) {
  return String(error && error.message ? error.message : error).split('\n')[0];
}

/** Tries each candidate in order; returns the first that loads with every expected export. */
function loadFirst(dir, target) {
  const candidates = findBinaries(dir, target);
  const where = `${target.platform}-${target.arch} (${target.libc}, node ${process.versions.node})`;
  if (candidates.length === 0) {
    throw codedError(
      'ERR_VMLINK_NATIVE_NOT_BUILT',
      `@vmlink/native: no addon binary for ${where}: no prebuild in ${path.join(dir, 'prebuilds', `${target.platform}-${target.arch}`)} ` +
        `and no local build in ${path.join(dir, 'build', 'Release')}; ${REBUILD}`,
    );
  }
  const failures = [];
  let stale;
  for (const candidate of candidates) {
    let binding;
    try {
      binding = require(candidate.file);
    } catch (error) {
      failures.push({ candidate, error, reason: firstLine(error) });
      continue;
    }
    const missing = missingExports(binding);
    if (missing.length === 0) return binding;
    stale ??= { candidate, missing };
    failures.push({ candidate, reason: `lacks ${missing.join(', ')}` });
  }
  const tried = failures.map(({ candidate, reason }) => `${candidate.kind} ${candidate.file}: ${reason}`).join('; ');
  if (stale !== undefined) {
    throw codedError(
      'ERR_VMLINK_NATIVE_MISMATCH',
      `@vmlink/native: the addon binary for ${where} is out of date (tried ${tried}); ${REBUILD}`,
    );
  }
  throw codedError(
    'ERR_VMLINK_NATIVE_NOT_BUILT',
    `@vmlink/native: no addon binary loads on ${where} (tried ${tried}); ${REBUILD}`,
    failures[0].error,
  );
}

/**
 * Loads (once) and returns the addon. `options.platform` lets tests pretend to be on
 * another platform (and `arch`, `libc` pick another prebuild); `options.dir` loads from
 * another package directory.
 */
function loadBinding(options = {}) {
  const nodeVersion = options.nodeVersion ?? process.versions.node;
  if (!(Number.parseInt(nodeVersion, 10) >= MIN_NODE_MAJOR)) {
    throw codedError(
      'ERR_VMLINK_UNSUPPORTED_NODE',
      `@vmlink/native needs Node.js >= ${MIN_NODE_MAJOR} (CI runs 20 and proves 22, 24 and 26); this is Node.js ${nodeVersion}`,
    );
  }
  const platform = options.platform ?? process.platform;
  if (platform !== 'linux') {
    throw codedError(
      'ERR_VMLINK_UNSUPPORTED_PLATFORM',
      `@vmlink/native needs Linux (AF_VSOCK, io_submit); this platform is '${platform}'`,
    );
  }
  const custom = options.dir !== undefined || options.arch !== undefined || options.libc !== undefined;
  if (!custom && cached !== undefined) return cached;
  const target = { platform, arch: options.arch ?? process.arch, libc: options.libc ?? detectLibc() };
  const binding = loadFirst(options.dir ?? __dirname, target);
  if (!custom) cached = binding;
  return binding;
}

/** True when the addon can be loaded here (Linux and built). Never throws. */
function isAvailable(options) {
  try {
    loadBinding(options);
    return true;
  } catch {
    return false;
  }
}

/** node-gyp from npm (lifecycle scripts get npm's own), else the one on PATH. */
function nodeGypCommand() {
  const bundled = process.env.npm_config_node_gyp;
  return bundled ? [process.execPath, [bundled]] : ['node-gyp', []];
}

function buildFromSource() {
  const { spawnSync } = require('node:child_process');
  const [command, prefix] = nodeGypCommand();
  console.error(`@vmlink/native: building from source (node-gyp rebuild; ${NEEDS})`);
  const result = spawnSync(command, [...prefix, 'rebuild', '--jobs', 'max'], { cwd: __dirname, stdio: 'inherit' });
  if (result.error) console.error(`@vmlink/native: could not start node-gyp: ${result.error.message}`);
  return result.status === 0;
}

/**
 * The package's install hook. `npm rebuild @vmlink/native` always builds from source and
 * fails loudly. A plain install builds only an installed copy (under node_modules) whose
 * prebuilds do not load here, and never fails the install: loadBinding() explains later.
 * In this repository's own checkout the workspace `build` task builds the addon instead.
 */
function installHook() {
  const rebuilding = process.env.npm_command === 'rebuild';
  if (process.platform !== 'linux') return 0;
  if (rebuilding) return buildFromSource() ? 0 : 1;
  if (!__dirname.split(path.sep).includes('node_modules')) return 0;
  const target = { platform: 'linux', arch: process.arch, libc: detectLibc() };
  const prebuilt = findBinaries(__dirname, target).some((candidate) => candidate.kind === 'prebuild');
  if (prebuilt && isAvailable()) return 0;
  if (!buildFromSource()) {
    console.error(`@vmlink/native: no prebuild for ${target.arch} (${target.libc}) and the build failed; ${REBUILD} once they are installed`);
  }
  return 0;
}

module.exports = { loadBinding, isAvailable, expectedExports: expected };

if (require.main === module && process.argv[2] === 'install') process.exitCode = installHook();
