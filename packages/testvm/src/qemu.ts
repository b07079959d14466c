import type { ArchProfile } from './arch.js';

export const CONTROL_PORT_NAME = 'org.vmlink.testvm.control';
export const RESULT_PORT_NAME = 'org.vmlink.testvm.result';

export interface QemuPort {
  name: string;
  socketPath: string;
}

export interface QemuShare {
  tag: string;
  hostPath: string;
  readOnly: boolean;
}

/** A vhost-user-vsock device for the guest: its backend listens on `deviceSocket`. */
export interface QemuVsock {
  deviceSocket: string;
}

export interface QemuConfig {
  profile: ArchProfile;
  accel: 'tcg' | 'kvm';
  kernel: string;
  initrd: string;
  memoryMiB: number;
  cpus: number;
  consoleLog: string;
  resultLog: string;
  controlSocket: string;
  ports: readonly QemuPort[];
  shares: readonly QemuShare[];
  /** Attach a vhost-user-vsock-pci device (its backend must already listen). */
  vsock?: QemuVsock;
  /** `-M microvm` with every device on virtio-mmio (x64); see StartVmOptions.machine. */
  microvm?: MicrovmConfig;
}

export interface MicrovmConfig {
  /** The TSC rate the guest is told (tsc_early_khz): microvm has nothing to calibrate it against. */
  tscKhz: number;
}

/**
 * microvm's machine options: the RTC for the guest's wall clock; no PCI, no ACPI-less
 * device list (Debian's kernel finds virtio-mmio devices through ACPI, its virtio_mmio
 * has no command-line devices).
 */
export const MICROVM_MACHINE = 'microvm,rtc=on';

/** The virtio device models of a machine: PCI ones, or virtio-mmio ones on microvm. */
function deviceModel(config: Pick<QemuConfig, 'microvm'>, pci: string, mmio: string): string {
  return config.microvm === undefined ? pci : mmio;
}

/** Kernel parameter naming the optional modules /init loads (see OPTIONAL_GUEST_MODULES). */
export const MODULES_PARAM = 'vmlink.modules';

/** The optional guest modules a config needs, for MODULES_PARAM. */
export function optionalModulesFor(config: Pick<QemuConfig, 'vsock'>): string[] {
  return config.vsock === undefined ? [] : ['vmw_vsock_virtio_transport'];
}

/**
 * A vhost-user backend maps the guest's RAM, so it must come from a shared memfd as big as
 * `-m`; the chardev is a client: the backend listens, and must before QEMU starts.
 */
export function vsockArgs(vsock: QemuVsock, memoryMiB: number, config: Pick<QemuConfig, 'microvm'> = {}): string[] {
  return [
    '-object', `memory-backend-memfd,id=mem,size=${memoryMiB}M,share=on`,
    '-machine', 'memory-backend=mem', // merges with the profile's -M (q35, virt or microvm)
    '-chardev', `socket,id=vhvsock,path=${qemuValue(vsock.deviceSocket)}`,
    '-device', `${deviceModel(config, 'vhost-user-vsock-pci', 'vhost-user-vsock-device')},chardev=vhvsock`,
  ];
}

/** The profile's `-M X -cpu Y` with microvm as the machine. */
function microvmMachineArgs(profileArgs: readonly string[]): string[] {
  const args = [...profileArgs];
  const at = args.indexOf('-M');
  if (at >= 0) args.splice(at, 2, '-M', MICROVM_MACHINE);
  else args.unshift('-M', MICROVM_MACHINE);
  return args;
}

/** QEMU's option syntax: a comma inside a value is written twice. */
export function qemuValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** The command line: kernel-facts.md's verified one plus our ports and shares. */
export function qemuArgs(config: QemuConfig): string[] {
  const { profile } = config;
  const optional = optionalModulesFor(config);
  const modulesParam = optional.length === 0 ? '' : ` ${MODULES_PARAM}=${optional.join(',')}`;
  const microvm = config.microvm;
  // microvm: its own machine (the profile's -cpu kept) and its default firmware (qboot).
  const machineArgs = microvm === undefined ? [...profile.machineArgs, ...profile.firmwareArgs] : microvmMachineArgs(profile.machineArgs);
  const kernelArgs = microvm === undefined ? profile.kernelArgs : [...profile.kernelArgs, `tsc_early_khz=${microvm.tscKhz}`];
  const args = [
    '-accel', config.accel,
    ...machineArgs,
    '-smp', String(config.cpus),
    '-m', String(config.memoryMiB),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initrd,
    '-append', ['console=' + profile.consoleDevice, 'panic=-1', 'quiet', 'loglevel=3', ...kernelArgs, 'rdinit=/init'].join(' ') + modulesParam,
    '-serial', `file:${config.consoleLog}`,
    '-monitor', 'none',
    '-device', `${deviceModel(config, 'virtio-serial-pci', 'virtio-serial-device')},id=vser0,max_ports=` + String(Math.max(31, config.ports.length + 2)),
    '-chardev', `socket,id=control,path=${qemuValue(config.controlSocket)},server=on,wait=off`,
    '-device', `virtserialport,bus=vser0.0,chardev=control,name=${CONTROL_PORT_NAME}`,
    '-chardev', `file,id=result,path=${qemuValue(config.resultLog)}`,
    '-device', `virtserialport,bus=vser0.0,chardev=result,name=${RESULT_PORT_NAME}`,
  ];
  config.ports.forEach((port, i) => {
    args.push(
      '-chardev', `socket,id=port${i},path=${qemuValue(port.socketPath)},server=on,wait=off`,
      '-device', `virtserialport,bus=vser0.0,chardev=port${i},name=${qemuValue(port.name)}`,
    );
  });
  config.shares.forEach((share, i) => {
    const readOnly = share.readOnly ? ',readonly=on' : '';
    if (microvm === undefined) {
      args.push('-virtfs', `local,path=${qemuValue(share.hostPath)},mount_tag=${share.tag},security_model=none${readOnly}`);
    } else {
      // -virtfs always makes a PCI device: spelled out as an fsdev and its virtio-mmio device.
      args.push(
        '-fsdev', `local,id=fs${i},path=${qemuValue(share.hostPath)},security_model=none${readOnly}`,
        '-device', `virtio-9p-device,fsdev=fs${i},mount_tag=${share.tag}`,
      );
    }
  });
  if (config.vsock !== undefined) args.push(...vsockArgs(config.vsock, config.memoryMiB, config));
  return args;
}
