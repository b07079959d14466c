import { testVmError, TestVmErrorCode } from './errors.js';

/**
 * Everything that differs between host architectures, in one place. Only x86_64 is
 * implemented; arm64 would be `qemu-system-aarch64 -M virt`, `linux-image-arm64` and
 * the PL011 console `ttyAMA0`.
 */
export interface ArchProfile {
  readonly nodeArch: string;
  readonly qemuBinary: string;
  readonly qemuPackage: string;
  /** Debian meta package that depends on the current versioned kernel image. */
  readonly kernelMetaPackage: string;
  readonly machineArgs: readonly string[];
  readonly firmwareArgs: readonly string[];
  readonly consoleDevice: string;
}

const X86_64: ArchProfile = {
  nodeArch: 'x64',
  qemuBinary: 'qemu-system-x86_64',
  qemuPackage: 'qemu-system-x86',
  kernelMetaPackage: 'linux-image-amd64',
  // pku=off: under TCG every PKRU write (each context switch of a process holding a
  // protection key, which Node 20 allocates at startup) flushes QEMU's whole soft TLB; a
  // vsock ping-pong, whose packets go through a kernel worker 4 switches per round trip,
  // ran 3x slower for it. Hosts this runs on (this one included) often lack PKU anyway.
  machineArgs: ['-M', 'q35', '-cpu', 'max,pku=off'],
  // qboot (from qemu-system-data) boots -kernel/-initrd ~4 s sooner than SeaBIOS under TCG.
  firmwareArgs: ['-bios', '/usr/share/qemu/qboot.rom'],
  consoleDevice: 'ttyS0',
};

export function archProfile(arch: string = process.arch): ArchProfile {
  if (arch === 'x64') return X86_64;
  throw testVmError(
    TestVmErrorCode.UNSUPPORTED_ARCH,
    `@vmlink/testvm boots x86_64 guests only; this host's architecture is '${arch}'`,
  );
}
