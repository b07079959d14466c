import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { invalidArgType, validateAbortSignal, validateInteger, VmlinkError } from '@vmlink/errors';
import { archProfile, type GuestArch } from './arch.js';
import { testVmError, TestVmErrorCode } from './errors.js';
import { CONTROL_PORT_NAME, RESULT_PORT_NAME } from './qemu.js';
import type { VsockDeviceHandle } from './vsock-device.js';

/**
 * A host<->guest vsock device: `true` for the default guest CID, `{ guestCid }`, or
 * `{ device }`: one the caller made with createVsockDevice() and keeps (testvm neither
 * creates nor closes it; it may serve one VM after another).
 */
export type VsockSpec = boolean | { guestCid?: number } | { device: VsockDeviceHandle };

/** What startVm does for `vsock`: create a device for `guestCid`, or use the caller's. */
export type ResolvedVsock = { guestCid: number; device?: undefined } | { guestCid: number; device: VsockDeviceHandle };

/** The guest CID when `vsock: true`: the first one a guest may have (0-2 are reserved). */
export const DEFAULT_GUEST_CID = 3;
export const MIN_GUEST_CID = 3;
/** 2^32-1 is VMADDR_CID_ANY. */
export const MAX_GUEST_CID = 0xffff_fffe;

/** A virtio-serial port, given by name (`'org.example.0'`) or as `{ name }`. */
export type PortSpec = string | { name: string };

export interface StartVmOptions {
  /** Host folder(s) mounted over 9p at the same absolute path in the guest. */
  share?: string | readonly string[];
  /** Mount the shares read-only (default false: tests may write results). */
  shareReadOnly?: boolean;
  /** Named virtio-serial ports, each backed by a host Unix socket (`vm.portPath(name)`). */
  ports?: readonly PortSpec[];
  /** Guest memory; default 1024. */
  memoryMiB?: number;
  /** Guest CPUs; default 1 (as fast as 2 under TCG for light work, and kinder to parallel tests). */
  cpus?: number;
  /** How long the boot may take until the guest is ready to run commands; default 120 000. */
  timeoutMs?: number;
  /** Aborts the boot (QEMU is killed, the promise rejects with an AbortError). */
  signal?: AbortSignal;
  /** Host programs copied into the guest with the libraries they load, e.g. `['socat']`. */
  withPrograms?: readonly string[];
  /** QEMU binary name or path; default `qemu-system-x86_64` on PATH. */
  qemuBinary?: string;
  /** `'tcg'` (default) or `'kvm'`; KVM only where it is known to boot. */
  accel?: 'tcg' | 'kvm';
  /** Environment every `vm.run` starts from, merged over the default. */
  env?: Readonly<Record<string, string>>;
  /** Cap on each of stdout and stderr kept per command; default 64 MiB. */
  maxOutputBytes?: number;
  /**
   * A real host<->guest virtio-vsock device (vhost-user-vsock-pci served by
   * @vmlink/vhost-user-vsock in this process, guest memory from a shared memfd): the host
   * side is hybrid vsock at `vm.vsockPath`. Default guest CID 3. CID 1 keeps working.
   */
  vsock?: VsockSpec;
  /**
   * Guest architecture: `'x64'` or `'arm64'`; default the host's. A guest of another
   * architecture gets its userland from Debian packages of that architecture and its node
   * from npm (`node-linux-<arch>` at the host's Node version); see the README.
   */
  arch?: GuestArch;
  /** The node binary packed into the guest (for the guest's architecture); default the host's node, or npm's for a foreign guest. */
  guestNode?: string;
  /**
   * `'microvm'` (x64 only): QEMU's `-M microvm`, every device on virtio-mmio (the vsock
   * device is `vhost-user-vsock-device`). Needs `virtio_mmio` in the guest initramfs. The
   * guest gets `tsc_early_khz` from the host's /proc/cpuinfo: microvm has no PIT speaker
   * port, HPET or PM timer to calibrate the TSC against, and under TCG the kernel would
   * hang at "tsc: Marking TSC unstable". Default: the architecture's own machine (q35, virt).
   */
  machine?: 'microvm';
}

export interface ResolvedShare {
  path: string;
  tag: string;
}

export interface ResolvedOptions {
  shares: ResolvedShare[];
  shareReadOnly: boolean;
  ports: string[];
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  withPrograms: string[];
  qemuBinary: string | undefined;
  accel: 'tcg' | 'kvm';
  env: Record<string, string>;
  maxOutputBytes: number;
  vsock: ResolvedVsock | undefined;
  arch: GuestArch;
  guestNode: string | undefined;
  machine: 'microvm' | undefined;
}

const MAX_PORT_NAME = 255;
const RESERVED_PREFIX = 'org.vmlink.testvm.';

/** virtio-serial names become /dev/virtio-ports/NAME: printable ASCII, no '/', not '.' or '..'. */
export function validatePortName(name: unknown): string {
  if (typeof name !== 'string') throw invalidArgType('ports[].name', 'of type string', name);
  let problem: string | undefined;
  if (name.length === 0) problem = 'it is empty';
  else if (name.length > MAX_PORT_NAME) problem = `it is longer than ${MAX_PORT_NAME} characters`;
  else if (!/^[\x21-\x7e]+$/.test(name)) problem = 'only printable ASCII without spaces is allowed';
  else if (name.includes('/')) problem = "'/' is not allowed";
  else if (name === '.' || name === '..') problem = "'.' and '..' are not allowed";
  else if (name.startsWith(RESERVED_PREFIX) || name === CONTROL_PORT_NAME || name === RESULT_PORT_NAME) {
    problem = `names starting with '${RESERVED_PREFIX}' are reserved`;
  }
  if (problem !== undefined) {
    throw testVmError(TestVmErrorCode.BAD_PORT_NAME, `bad virtio-serial port name ${JSON.stringify(name)}: ${problem}`);
  }
  return name;
}

/** Guest folders a share must not hide: mounting over them (or a parent) breaks the guest. */
function guestEssentials(): string[] {
  return ['/proc', '/sys', '/dev', '/etc', '/usr/bin', '/usr/lib', '/usr/lib64', '/usr/sbin', '/bin', '/lib', '/lib64', '/sbin', '/opt/vmlink-testvm', dirname(process.execPath)];
}

function isSameOrInside(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

async function resolveShare(path: unknown, index: number): Promise<ResolvedShare> {
  if (typeof path !== 'string' || path === '') throw invalidArgType('share', 'a non-empty string or an array of them', path);
  const absolute = isAbsolute(path) ? path : resolve(path);
  const info = await stat(absolute).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) {
    throw testVmError(
      TestVmErrorCode.SHARE_NOT_FOUND,
      `share folder '${absolute}' ${info === undefined ? 'does not exist' : 'is not a folder'}`,
    );
  }
  const hidden = guestEssentials().find((essential) => isSameOrInside(essential, absolute));
  if (hidden !== undefined) {
    throw testVmError(
      TestVmErrorCode.BAD_SHARE,
      `share folder '${absolute}' cannot be mounted at its own path in the guest: it would hide the guest's ${hidden}`,
    );
  }
  return { path: absolute, tag: `vmlink${index}` };
}

function stringRecord(value: unknown, name: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null) throw invalidArgType(name, 'an object of strings', value);
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw invalidArgType(`${name}.${key}`, 'of type string', v);
    out[key] = v;
  }
  return out;
}

/** A caller's device must look like @vmlink/vhost-user-vsock's VsockDevice (what testvm uses of it). */
function validateDevice(device: unknown): VsockDeviceHandle {
  const d = device as Partial<Record<keyof VsockDeviceHandle, unknown>> | null;
  const shaped =
    typeof d === 'object' &&
    d !== null &&
    typeof d.socket === 'string' &&
    typeof d.udsPath === 'string' &&
    typeof d.guestCid === 'number' &&
    typeof d.once === 'function' &&
    typeof d.close === 'function';
  if (!shaped) throw invalidArgType('vsock.device', 'a device from createVsockDevice() (socket, udsPath, guestCid, once, close)', device);
  if ((device as { closed?: unknown }).closed === true) {
    throw new VmlinkError('ERR_INVALID_ARG_VALUE', `The vsock.device for guest CID ${String(d.guestCid)} is closed`);
  }
  return device as VsockDeviceHandle;
}

/** `vsock: true | false | { guestCid } | { device }` -> what to attach, or undefined for none. */
export function resolveVsock(value: unknown): ResolvedVsock | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { guestCid: DEFAULT_GUEST_CID };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgType('vsock', 'a boolean or an object like { guestCid } or { device }', value);
  }
  const { guestCid, device } = value as { guestCid?: unknown; device?: unknown };
  if (device !== undefined) {
    if (guestCid !== undefined) {
      throw new VmlinkError('ERR_INVALID_ARG_VALUE', 'vsock takes { guestCid } or { device }, not both: the device has its own guestCid');
    }
    const handle = validateDevice(device);
    return { guestCid: handle.guestCid, device: handle };
  }
  return { guestCid: guestCid === undefined ? DEFAULT_GUEST_CID : validateInteger(guestCid, 'vsock.guestCid', MIN_GUEST_CID, MAX_GUEST_CID) };
}

export async function resolveOptions(options: StartVmOptions = {}): Promise<ResolvedOptions> {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
  validateAbortSignal(options.signal, 'options.signal');
  const shareList = options.share === undefined ? [] : typeof options.share === 'string' ? [options.share] : [...options.share];
  const shares: ResolvedShare[] = [];
  for (const [i, path] of shareList.entries()) shares.push(await resolveShare(path, i));
  // Parents are mounted before the folders inside them.
  shares.sort((a, b) => a.path.length - b.path.length);

  const ports = (options.ports ?? []).map((spec) => validatePortName(typeof spec === 'string' ? spec : spec?.name));
  const duplicate = ports.find((name, i) => ports.indexOf(name) !== i);
  if (duplicate !== undefined) {
    throw testVmError(TestVmErrorCode.BAD_PORT_NAME, `virtio-serial port name ${JSON.stringify(duplicate)} is given twice`);
  }
  const withPrograms = [...(options.withPrograms ?? [])];
  for (const program of withPrograms) {
    if (typeof program !== 'string' || program === '') throw invalidArgType('withPrograms[]', 'a non-empty string', program);
  }
  if (options.accel !== undefined && options.accel !== 'tcg' && options.accel !== 'kvm') {
    throw invalidArgType('accel', "'tcg' or 'kvm'", options.accel);
  }
  if (options.qemuBinary !== undefined && (typeof options.qemuBinary !== 'string' || options.qemuBinary === '')) {
    throw invalidArgType('qemuBinary', 'a non-empty string', options.qemuBinary);
  }
  if (options.arch !== undefined && typeof options.arch !== 'string') throw invalidArgType('arch', "'x64' or 'arm64'", options.arch);
  const arch = archProfile(options.arch ?? process.arch).nodeArch; // ERR_VMLINK_TESTVM_UNSUPPORTED_ARCH
  let guestNode: string | undefined;
  if (options.guestNode !== undefined) {
    if (typeof options.guestNode !== 'string' || options.guestNode === '') throw invalidArgType('guestNode', 'a non-empty string', options.guestNode);
    guestNode = resolve(options.guestNode);
    const info = await stat(guestNode).catch(() => undefined);
    if (info === undefined || !info.isFile()) {
      throw testVmError(TestVmErrorCode.PROGRAM_NOT_FOUND, `guestNode '${guestNode}' ${info === undefined ? 'does not exist' : 'is not a file'}`);
    }
  }
  if (options.machine !== undefined && options.machine !== 'microvm') throw invalidArgType('machine', "'microvm' or undefined", options.machine);
  if (options.machine === 'microvm' && arch !== 'x64') {
    throw new VmlinkError('ERR_INVALID_ARG_VALUE', `machine 'microvm' is x64 only (QEMU has no microvm for ${arch})`);
  }
  return {
    arch,
    guestNode,
    machine: options.machine,
    shares,
    shareReadOnly: options.shareReadOnly === true,
    ports,
    memoryMiB: validateInteger(options.memoryMiB ?? 1024, 'memoryMiB', 128, 65536),
    cpus: validateInteger(options.cpus ?? 1, 'cpus', 1, 64),
    timeoutMs: validateInteger(options.timeoutMs ?? 120_000, 'timeoutMs', 1, 2 ** 31 - 1),
    signal: options.signal,
    withPrograms,
    qemuBinary: options.qemuBinary,
    accel: options.accel ?? 'tcg',
    env: stringRecord(options.env, 'env'),
    maxOutputBytes: validateInteger(options.maxOutputBytes ?? 64 * 1024 * 1024, 'maxOutputBytes', 0, 2 ** 31 - 1),
    vsock: resolveVsock(options.vsock),
  };
}
