// Host-only: the QEMU command line and options of `startVm({ machine: 'microvm' })` (no QEMU).
import { describe, expect, it } from 'vitest';
import { archProfile } from '../src/arch.js';
import { GUEST_MODULES } from '../src/kernel-modules.js';
import { resolveOptions } from '../src/options.js';
import { qemuArgs } from '../src/qemu.js';
import { guestModulesFor } from '../src/start-vm.js';

function argsFor(microvm: boolean): string[] {
  return qemuArgs({
    profile: archProfile('x64'),
    accel: 'tcg',
    kernel: '/k',
    initrd: '/i',
    memoryMiB: 512,
    cpus: 1,
    consoleLog: '/t/console.log',
    resultLog: '/t/result.log',
    controlSocket: '/t/control.sock',
    ports: [{ name: 'org.example.p', socketPath: '/t/p.sock' }],
    shares: [{ tag: 'share0', hostPath: '/srv/a,b', readOnly: true }],
    vsock: { deviceSocket: '/t/dev.sock' },
    ...(microvm ? { microvm: { tscKhz: 2096024 } } : {}),
  });
}

const valueAfter = (args: readonly string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];
const devices = (args: readonly string[]): string[] => args.flatMap((a, i) => (args[i - 1] === '-device' ? [a.split(',')[0]!] : []));

describe("machine: 'microvm'", () => {
  it('microvm with the profile CPU, its own firmware, every device on virtio-mmio, the TSC rate on the kernel line', () => {
    const args = argsFor(true);
    expect(valueAfter(args, '-M')).toBe('microvm,rtc=on');
    expect(valueAfter(args, '-cpu')).toBe('max,pku=off');
    expect(args).not.toContain('-bios');
    expect(args).not.toContain('-virtfs');
    expect(devices(args)).toEqual(['virtio-serial-device', 'virtserialport', 'virtserialport', 'virtserialport', 'virtio-9p-device', 'vhost-user-vsock-device']);
    expect(valueAfter(args, '-fsdev')).toBe('local,id=fs0,path=/srv/a,,b,security_model=none,readonly=on');
    expect(args).toContain('virtio-9p-device,fsdev=fs0,mount_tag=share0');
    expect(valueAfter(args, '-append')).toContain(' tsc_early_khz=2096024 ');
    // the shared-memory backend the vhost-user device needs merges with microvm's -M
    expect(valueAfter(args, '-machine')).toBe('memory-backend=mem');
  });

  it('without it: q35, qboot, PCI devices, -virtfs (unchanged)', () => {
    const args = argsFor(false);
    expect(valueAfter(args, '-M')).toBe('q35');
    expect(valueAfter(args, '-bios')).toBe('/usr/share/qemu/qboot.rom');
    expect(devices(args)).toEqual(['virtio-serial-pci', 'virtserialport', 'virtserialport', 'virtserialport', 'vhost-user-vsock-pci']);
    expect(valueAfter(args, '-append')).not.toContain('tsc_early_khz');
  });

  it('the guest gets virtio_mmio (after virtio_pci) only on microvm', () => {
    expect(guestModulesFor({ machine: undefined })).toBe(GUEST_MODULES);
    const modules = guestModulesFor({ machine: 'microvm' });
    expect(modules.indexOf('virtio_mmio')).toBe(modules.indexOf('virtio_pci') + 1);
    expect(modules.filter((m) => m !== 'virtio_mmio')).toEqual([...GUEST_MODULES]);
  });

  it('options: any other machine is refused, and microvm on arm64', async () => {
    await expect(resolveOptions({ machine: 'pc' as 'microvm' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining("'pc'") });
    await expect(resolveOptions({ machine: 'microvm', arch: 'arm64' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('x64 only') });
    expect((await resolveOptions({ machine: 'microvm' })).machine).toBe('microvm');
  });
});
