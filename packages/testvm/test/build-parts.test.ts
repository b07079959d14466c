// Host-only tests of the pieces that build the guest (no QEMU needed).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCpio } from '../src/cpio.js';
import { moduleDepends, moduleNameOf } from '../src/kernel-modules.js';
import { validatePortName } from '../src/options.js';
import { qemuArgs, qemuValue } from '../src/qemu.js';
import { archProfile } from '../src/arch.js';
import { GuestTree, sharedLibraries } from '../src/host-files.js';
import { buildOnce, cacheRoot } from '../src/cache.js';
import { extractVmlinux } from '../src/vmlinux.js';
import { sameKernelLine } from '../src/kernel.js';

describe('newc cpio writer', () => {
  it('writes an archive GNU cpio extracts byte for byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-cpio-'));
    try {
      const source = join(dir, 'source.bin');
      const big = Buffer.alloc(1_000_003, 7); // odd size: exercises the 4-byte padding
      await writeFile(source, big);
      const archive = join(dir, 'out.cpio');
      await writeCpio(
        archive,
        [
          { type: 'dir', path: '/etc', mode: 0o755 },
          { type: 'data', path: '/etc/hello', mode: 0o640, data: Buffer.from('hi\n') },
          { type: 'file', path: '/big.bin', mode: 0o755, source },
          { type: 'symlink', path: '/link', target: 'etc/hello' },
        ],
        async () => big.length,
      );
      const out = join(dir, 'out');
      execFileSync('sh', ['-c', `mkdir -p "${out}" && cd "${out}" && cpio -id --quiet < "${archive}"`]);
      expect(await readFile(join(out, 'etc/hello'), 'utf8')).toBe('hi\n');
      expect((await stat(join(out, 'etc/hello'))).mode & 0o777).toBe(0o640);
      expect((await readFile(join(out, 'big.bin'))).equals(big)).toBe(true);
      expect(await readlink(join(out, 'link'))).toBe('etc/hello');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('kernel modules', () => {
  it('reads depends= from modinfo strings and normalises names', () => {
    const fake = Buffer.concat([Buffer.from('\x7fELF...\0license=GPL\0depends=virtio,virtio-ring\0vermagic=6.1\0')]);
    expect(moduleDepends(fake)).toEqual(['virtio', 'virtio_ring']);
    expect(moduleDepends(Buffer.from('\0depends=\0'))).toEqual([]);
    expect(moduleNameOf('virtio-rng.ko.xz')).toBe('virtio_rng');
  });
});

describe('port names', () => {
  it('accepts dotted names and refuses unusable ones with ERR_VMLINK_TESTVM_BAD_PORT_NAME', () => {
    expect(validatePortName('org.qemu.guest_agent.0')).toBe('org.qemu.guest_agent.0');
    for (const bad of ['', 'a/b', 'sp ace', '..', 'é', 'org.vmlink.testvm.mine']) {
      expect(() => validatePortName(bad)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_BAD_PORT_NAME' }));
    }
    expect(() => validatePortName(42)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('QEMU command line', () => {
  it('escapes commas in paths and names and never asks for KVM by default', () => {
    expect(qemuValue('/tmp/a,b')).toBe('/tmp/a,,b');
    const args = qemuArgs({
      profile: archProfile('x64'),
      accel: 'tcg',
      kernel: '/k',
      initrd: '/i',
      memoryMiB: 512,
      cpus: 1,
      consoleLog: '/t/console.log',
      resultLog: '/t/result.log',
      controlSocket: '/t/control.sock',
      ports: [{ name: 'x,y', socketPath: '/t/p,0.sock' }],
      shares: [{ tag: 'vmlink0', hostPath: '/data,1', readOnly: true }],
    });
    expect(args.slice(0, 2)).toEqual(['-accel', 'tcg']);
    expect(args).toContain('socket,id=port0,path=/t/p,,0.sock,server=on,wait=off');
    expect(args).toContain('virtserialport,bus=vser0.0,chardev=port0,name=x,,y');
    expect(args).toContain('local,path=/data,,1,mount_tag=vmlink0,security_model=none,readonly=on');
  });

  it('refuses architectures it has no profile for with ERR_VMLINK_TESTVM_UNSUPPORTED_ARCH', () => {
    for (const arch of ['riscv64', 'ia32', 's390x']) {
      expect(() => archProfile(arch)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_UNSUPPORTED_ARCH', message: expect.stringContaining(`'${arch}'`) }));
    }
  });
});

describe('guest tree from host files', () => {
  it('keeps host paths and recreates merged-/usr symlinks for node and its libraries', async () => {
    const tree = new GuestTree();
    await tree.addHostBinary(process.execPath);
    for (const lib of await sharedLibraries(process.execPath)) {
      expect(tree.has(lib), lib).toBe(true);
    }
    expect(tree.has(process.execPath)).toBe(true);
  });
});

describe('cache', () => {
  it('resolves the cache folder from the environment', () => {
    expect(cacheRoot({ VMLINK_TESTVM_CACHE: '/c' })).toBe('/c');
    expect(cacheRoot({ XDG_CACHE_HOME: '/x' })).toBe('/x/vmlink-testvm');
  });

  it('builds an entry once even when asked concurrently, and never shows a half-built one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-cachetest-'));
    try {
      let builds = 0;
      const target = join(dir, 'entry');
      const build = async (tmp: string): Promise<void> => {
        builds++;
        await writeFile(join(tmp, 'part1'), 'a');
        await new Promise((resolve) => setTimeout(resolve, 300));
        await writeFile(join(tmp, 'part2'), 'b');
      };
      await Promise.all([buildOnce(target, build), buildOnce(target, build), buildOnce(target, build)]);
      expect(builds).toBe(1);
      expect(await readFile(join(target, 'part2'), 'utf8')).toBe('b');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('vmlinux extraction', () => {
  it('finds the xz payload inside a bzImage-like file and unpacks the ELF', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-vmlinux-'));
    try {
      const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), randomBytes(100_000)]);
      await writeFile(join(dir, 'elf'), elf);
      execFileSync('xz', ['-k', join(dir, 'elf')]);
      const payload = await readFile(join(dir, 'elf.xz'));
      // Setup code before the payload, a trailer after it, as in a real bzImage.
      const bzImage = Buffer.concat([Buffer.alloc(20_000, 0x90), payload, Buffer.alloc(64, 0xaa)]);
      await writeFile(join(dir, 'vmlinuz'), bzImage);
      expect(await extractVmlinux(join(dir, 'vmlinuz'), join(dir, 'vmlinux'))).toBe(true);
      expect((await readFile(join(dir, 'vmlinux'))).equals(elf)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports false and leaves nothing when there is no payload', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-vmlinux-'));
    try {
      await writeFile(join(dir, 'vmlinuz'), Buffer.alloc(4096, 0x90));
      expect(await extractVmlinux(join(dir, 'vmlinuz'), join(dir, 'vmlinux'))).toBe(false);
      expect(await readdir(dir)).toEqual(['vmlinuz']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('kernel cache pruning (pure)', () => {
  it('prunes within one arch and module set only: the default, vsock and aio sets of amd64 never evict each other', () => {
    const entries = [
      'linux-image-6.1.0-57-amd64_6.1.192-3_86e1286bb0f5_v2',
      'linux-image-6.1.0-57-amd64_6.1.192-3_e551ba2b3ef9_v2',
      'linux-image-6.1.0-56-amd64_6.1.190-1_e551ba2b3ef9_v2',
      'linux-image-6.1.0-57-arm64_6.1.192-3_e551ba2b3ef9_v2',
      'current-linux-image-amd64-e551ba2b3ef9-v2.json',
    ];
    expect(entries.filter((name) => sameKernelLine(name, 'amd64', 'e551ba2b3ef9'))).toEqual([
      'linux-image-6.1.0-57-amd64_6.1.192-3_e551ba2b3ef9_v2',
      'linux-image-6.1.0-56-amd64_6.1.190-1_e551ba2b3ef9_v2',
    ]);
  });
});
