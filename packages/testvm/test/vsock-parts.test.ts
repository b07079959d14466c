// Host-only tests of the vsock plumbing (pure logic, no QEMU): the QEMU command line, the
// option and CLI validation, and the optional device import (with injected importers,
// which are test doubles named as such).
import { describe, expect, it } from 'vitest';
import { archProfile } from '../src/arch.js';
import { parseRunArgs } from '../src/cli/args.js';
import { GUEST_MODULES, OPTIONAL_GUEST_MODULES } from '../src/kernel-modules.js';
import { resolveOptions, resolveVsock } from '../src/options.js';
import { qemuArgs, type QemuConfig } from '../src/qemu.js';
import { DEVICE_PACKAGE, loadDeviceModule } from '../src/vsock-device.js';

const coded = (code: string, message?: RegExp) => expect.objectContaining({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });

const base: QemuConfig = {
  profile: archProfile('x64'),
  accel: 'tcg',
  kernel: '/k',
  initrd: '/i',
  memoryMiB: 768,
  cpus: 2,
  consoleLog: '/t/console.log',
  resultLog: '/t/result.log',
  controlSocket: '/t/control.sock',
  ports: [],
  shares: [],
};

/** The value after each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));
}

describe('QEMU command line with a vsock device', () => {
  it('backs all guest RAM with one shared memfd of exactly -m, and attaches vhost-user-vsock-pci as a chardev client', () => {
    const args = qemuArgs({ ...base, vsock: { deviceSocket: '/t/dev,1.sock' } });
    expect(values(args, '-m')).toEqual(['768']);
    expect(values(args, '-object')).toEqual(['memory-backend-memfd,id=mem,size=768M,share=on']);
    expect(values(args, '-machine')).toEqual(['memory-backend=mem']);
    expect(values(args, '-M')).toEqual(['q35']); // the -machine above merges into it
    const chardev = values(args, '-chardev').find((c) => c.startsWith('socket,id=vhvsock,'));
    // A client (no server=on): the device listens, and is started before QEMU.
    expect(chardev).toBe('socket,id=vhvsock,path=/t/dev,,1.sock');
    expect(values(args, '-device')).toContain('vhost-user-vsock-pci,chardev=vhvsock');
  });

  it('asks /init for the virtio vsock transport on the kernel command line only with a device', () => {
    const [withVsock] = values(qemuArgs({ ...base, vsock: { deviceSocket: '/t/d.sock' } }), '-append');
    expect(withVsock?.split(' ')).toContain('vmlink.modules=vmw_vsock_virtio_transport');
    const plain = qemuArgs(base);
    expect(values(plain, '-append')[0]).not.toContain('vmlink.modules');
    expect(plain.join(' ')).not.toMatch(/memory-backend|vhost-user/);
  });

  it('puts the transport module in the initramfs after vsock_loopback, as an optional one', () => {
    expect(GUEST_MODULES.indexOf('vmw_vsock_virtio_transport')).toBeGreaterThan(GUEST_MODULES.indexOf('vsock_loopback'));
    expect(OPTIONAL_GUEST_MODULES).toEqual(['vmw_vsock_virtio_transport']);
  });
});

describe('vsock option', () => {
  it('defaults to guest CID 3, takes { guestCid }, and is off when absent or false', () => {
    expect(resolveVsock(undefined)).toBeUndefined();
    expect(resolveVsock(false)).toBeUndefined();
    expect(resolveVsock(true)).toEqual({ guestCid: 3 });
    expect(resolveVsock({})).toEqual({ guestCid: 3 });
    expect(resolveVsock({ guestCid: 42 })).toEqual({ guestCid: 42 });
    expect(resolveVsock({ guestCid: 0xffff_fffe })).toEqual({ guestCid: 0xffff_fffe });
  });

  it.each([
    [{ guestCid: 2 }, 'ERR_OUT_OF_RANGE', /"vsock\.guestCid".*>= 3.*Received 2/],
    [{ guestCid: 0xffff_ffff }, 'ERR_OUT_OF_RANGE', /"vsock\.guestCid".*Received 4294967295/],
    [{ guestCid: 3.5 }, 'ERR_OUT_OF_RANGE', /Received 3\.5/],
    [{ guestCid: '3' }, 'ERR_INVALID_ARG_TYPE', /"vsock\.guestCid".*'3'/],
    ['yes', 'ERR_INVALID_ARG_TYPE', /"vsock" argument must be a boolean or an object/],
    [null, 'ERR_INVALID_ARG_TYPE', /"vsock".*null/],
  ])('vsock: %o is refused with %s', async (vsock, code, message) => {
    expect(() => resolveVsock(vsock)).toThrow(coded(code, message));
    await expect(resolveOptions({ vsock: vsock as never })).rejects.toThrow(coded(code, message));
  });
});

describe('vsock: { device } (a caller-owned device; the handles here are plain-object test doubles)', () => {
  const handle = (extra: Record<string, unknown> = {}) => ({
    socket: '/t/dev.sock',
    udsPath: '/t/v.sock',
    guestCid: 12,
    once: () => undefined,
    close: () => Promise.resolve(),
    ...extra,
  });

  it("takes the device's own CID and keeps the device", () => {
    const device = handle();
    expect(resolveVsock({ device })).toEqual({ guestCid: 12, device });
  });

  it.each([
    [{ device: {} }, 'ERR_INVALID_ARG_TYPE', /"vsock\.device" argument must be a device from createVsockDevice\(\)/],
    [{ device: handle({ close: undefined }) }, 'ERR_INVALID_ARG_TYPE', /"vsock\.device"/],
    [{ device: handle({ closed: true }) }, 'ERR_INVALID_ARG_VALUE', /vsock\.device for guest CID 12 is closed/],
    [{ device: handle(), guestCid: 12 }, 'ERR_INVALID_ARG_VALUE', /not both/],
  ])('%o is refused with %s', (vsock, code, message) => {
    expect(() => resolveVsock(vsock)).toThrow(coded(code, message));
  });
});

describe('CLI --vsock', () => {
  it('--vsock gives CID 3, --guest-cid N another, and nothing without --vsock', () => {
    expect(parseRunArgs(['--', 'true'], true).vsockGuestCid).toBeUndefined();
    expect(parseRunArgs(['--vsock', '--', 'true'], true).vsockGuestCid).toBe(3);
    expect(parseRunArgs(['--vsock', '--guest-cid', '77', '--', 'true'], true).vsockGuestCid).toBe(77);
  });

  it.each([
    [['--vsock', '--guest-cid', '2'], /--guest-cid must be >= 3/],
    [['--vsock', '--guest-cid', '4294967295'], /--guest-cid must be >= 3 and <= 4294967294/],
    [['--vsock', '--guest-cid', 'x'], /--guest-cid needs a positive integer, got 'x'/],
    [['--guest-cid', '5'], /--guest-cid needs --vsock/],
  ])('%o is a usage error', (argv, message) => {
    expect(() => parseRunArgs([...argv, '--', 'true'], true)).toThrow(coded('ERR_VMLINK_TESTVM_USAGE', message));
  });
});

describe('optional device package', () => {
  it('a missing @vmlink/vhost-user-vsock is ERR_VMLINK_TESTVM_VSOCK_DEVICE_MISSING with the install line (injected importer)', async () => {
    for (const code of ['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND']) {
      const missing = Object.assign(new Error(`Cannot find package '${DEVICE_PACKAGE}' imported from /x`), { code });
      await expect(loadDeviceModule(() => Promise.reject(missing))).rejects.toThrow(
        coded('ERR_VMLINK_TESTVM_VSOCK_DEVICE_MISSING', /needs the optional package @vmlink\/vhost-user-vsock.*npm install @vmlink\/vhost-user-vsock/),
      );
    }
  });

  it('other import failures pass through unchanged (a missing dependency inside it, an unbuilt addon)', async () => {
    const inner = Object.assign(new Error("Cannot find package 'left-pad' imported from /y"), { code: 'ERR_MODULE_NOT_FOUND' });
    await expect(loadDeviceModule(() => Promise.reject(inner))).rejects.toBe(inner);
    const unbuilt = Object.assign(new Error('addon not built'), { code: 'ERR_VMLINK_NATIVE_NOT_BUILT' });
    await expect(loadDeviceModule(() => Promise.reject(unbuilt))).rejects.toBe(unbuilt);
  });

  it('a module without createVsockDevice is refused; one with it is returned', async () => {
    await expect(loadDeviceModule(() => Promise.resolve({}))).rejects.toThrow(coded('ERR_VMLINK_TESTVM_VSOCK_DEVICE_MISSING', /exports no createVsockDevice/));
    const fake = { createVsockDevice: () => Promise.reject(new Error('unused')) };
    await expect(loadDeviceModule(() => Promise.resolve(fake))).resolves.toBe(fake);
  });

  it('the real package resolves from testvm in this workspace', async () => {
    const module = await loadDeviceModule();
    expect(typeof module.createVsockDevice).toBe('function');
  });
});
