import { createRequire } from 'node:module';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
type Native = typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
type LookupOptions = NonNullable<Parameters<Native['loadBinding']>[0]>;
const native = require('../index.cjs') as Native;

const builtAddon = join(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'Release', 'vmlink.node');
const GARBAGE = 'not an ELF shared object\n';
const FIXED_TIME = new Date('2026-01-01T00:00:00Z');

/** A fake package directory: files are garbage unless given the real built addon. */
const packageDirs: string[] = [];
function fakePackage(files: Record<string, 'garbage' | 'real'>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-native-layout-'));
  packageDirs.push(dir);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    if (content === 'real') copyFileSync(builtAddon, join(dir, file));
    else writeFileSync(join(dir, file), GARBAGE);
    // One mtime for all: the order under test must not depend on which file was written last.
    utimesSync(join(dir, file), FIXED_TIME, FIXED_TIME);
  }
  return dir;
}
afterEach(() => {
  for (const dir of packageDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The binaries loadBinding tried, in order, read from its error (paths relative to `dir`). */
function triedInOrder(dir: string, options: LookupOptions): string[] {
  let error: unknown;
  try {
    native.loadBinding({ dir, ...options });
  } catch (caught) {
    error = caught;
  }
  expect(error).toMatchObject({ code: 'ERR_VMLINK_NATIVE_NOT_BUILT' });
  const message = (error as Error).message;
  return [...message.matchAll(new RegExp(`(?:prebuild|local build) ${dir}/(\\S+):`, 'g'))].map((match) => match[1]!);
}

describe('@vmlink/native loader', () => {
  it('loads the built addon on Linux with every expected export', () => {
    const binding = native.loadBinding();
    for (const names of Object.values(native.expectedExports)) {
      for (const name of names) expect(binding).toHaveProperty(name);
    }
    expect(binding.errnoName(111)).toBe('ECONNREFUSED');
    expect(binding.errnoName(-2)).toBe('ENOENT');
  });

  it.each(['darwin', 'win32', 'freebsd'])('fails with ERR_VMLINK_UNSUPPORTED_PLATFORM on %s', (platform) => {
    expect(() => native.loadBinding({ platform })).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_UNSUPPORTED_PLATFORM', message: expect.stringContaining(platform) }),
    );
    expect(native.isAvailable({ platform })).toBe(false);
  });

  it('fails with ERR_VMLINK_NATIVE_NOT_BUILT naming `npm rebuild @vmlink/native` and the tools it needs', () => {
    const empty = fakePackage({});
    expect(() => native.loadBinding({ dir: empty })).toThrow(
      expect.objectContaining({
        code: 'ERR_VMLINK_NATIVE_NOT_BUILT',
        message: expect.stringMatching(/no prebuild in \S+prebuilds\/linux-x64 and no local build in \S+build\/Release; run `npm rebuild @vmlink\/native` to build it from source \(needs python3, make and g\+\+\)/),
      }),
    );
    expect(native.isAvailable({ dir: empty })).toBe(false);
  });

  // Lookup order, on a fake prebuilds layout in a temp dir: every file is garbage, so each
  // one is really dlopen()ed, fails, and the error lists them in the order they were tried.
  const layout = {
    'prebuilds/darwin-x64/@vmlink+native.node': 'garbage',
    'prebuilds/linux-x64+arm64/@vmlink+native.glibc.node': 'garbage',
    'prebuilds/linux-x64/@vmlink+native.node': 'garbage',
    'prebuilds/linux-x64/@vmlink+native.glibc.node': 'garbage',
    'prebuilds/linux-x64/@vmlink+native.musl.node': 'garbage',
    'prebuilds/linux-x64/@vmlink+native.abi1.node': 'garbage',
    'prebuilds/linux-arm64/@vmlink+native.armv8.glibc.node': 'garbage',
    'prebuilds/linux-arm64/@vmlink+native.armv7.glibc.node': 'garbage',
    'build/Debug/vmlink.node': 'garbage',
    'build/Release/vmlink.node': 'garbage',
  } as const;

  it('tries prebuilds for this platform, arch and libc first (most specific, single-arch first), then the local build', () => {
    expect(triedInOrder(fakePackage(layout), { arch: 'x64', libc: 'glibc' })).toEqual([
      'prebuilds/linux-x64/@vmlink+native.glibc.node',
      'prebuilds/linux-x64/@vmlink+native.node',
      'prebuilds/linux-x64+arm64/@vmlink+native.glibc.node',
      'build/Release/vmlink.node',
      'build/Debug/vmlink.node',
    ]);
  });

  it('picks the musl prebuild on musl and the arm64 (armv8) one on arm64', () => {
    const dir = fakePackage(layout);
    expect(triedInOrder(dir, { arch: 'x64', libc: 'musl' }).slice(0, 2)).toEqual([
      'prebuilds/linux-x64/@vmlink+native.musl.node',
      'prebuilds/linux-x64/@vmlink+native.node',
    ]);
    expect(triedInOrder(dir, { arch: 'arm64', libc: 'glibc' })).toEqual([
      'prebuilds/linux-arm64/@vmlink+native.armv8.glibc.node',
      'prebuilds/linux-x64+arm64/@vmlink+native.glibc.node',
      'build/Release/vmlink.node',
      'build/Debug/vmlink.node',
    ]);
  });

  it('says why each binary failed and keeps the first load error as the cause', () => {
    const dir = fakePackage({ 'prebuilds/linux-x64/@vmlink+native.glibc.node': 'garbage' });
    expect(() => native.loadBinding({ dir, arch: 'x64', libc: 'glibc' })).toThrow(
      expect.objectContaining({
        code: 'ERR_VMLINK_NATIVE_NOT_BUILT',
        message: expect.stringMatching(/tried prebuild \S+@vmlink\+native\.glibc\.node: .*; run `npm rebuild @vmlink\/native` .*\(needs python3, make and g\+\+\)/),
        cause: expect.objectContaining({ message: expect.stringContaining('@vmlink+native.glibc.node') }),
      }),
    );
  });

  it('loads a working prebuild, and falls back to the local build when the prebuild does not load', () => {
    const prebuilt = fakePackage({ 'prebuilds/linux-x64/@vmlink+native.glibc.node': 'real', 'build/Release/vmlink.node': 'garbage' });
    expect(native.loadBinding({ dir: prebuilt, arch: 'x64', libc: 'glibc' }).errnoName(2)).toBe('ENOENT');
    const fallback = fakePackage({ 'prebuilds/linux-x64/@vmlink+native.glibc.node': 'garbage', 'build/Release/vmlink.node': 'real' });
    expect(native.loadBinding({ dir: fallback, arch: 'x64', libc: 'glibc' }).errnoName(111)).toBe('ECONNREFUSED');
  });

  it('refuses a Node.js line older than 20 with ERR_VMLINK_UNSUPPORTED_NODE naming the version', () => {
    expect(() => native.loadBinding({ nodeVersion: '18.20.8' })).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_UNSUPPORTED_NODE', message: expect.stringContaining('this is Node.js 18.20.8') }),
    );
  });

  it('tries a local build newer than every prebuild first (a rebuild after the prebuilds were made)', () => {
    const dir = fakePackage(layout);
    const later = new Date(FIXED_TIME.getTime() + 60_000);
    utimesSync(join(dir, 'build/Release/vmlink.node'), later, later);
    expect(triedInOrder(dir, { arch: 'x64', libc: 'glibc' })).toEqual([
      'build/Release/vmlink.node',
      'prebuilds/linux-x64/@vmlink+native.glibc.node',
      'prebuilds/linux-x64/@vmlink+native.node',
      'prebuilds/linux-x64+arm64/@vmlink+native.glibc.node',
      'build/Debug/vmlink.node',
    ]);
  });
});
