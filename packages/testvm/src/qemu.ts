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
export function vsockArgs(vsock: QemuVsock, memoryMiB: number): string[] {
  return [
    '-object', `memory-backend-memfd,id=mem,size=${memoryMiB}M,share=on`,
    '-machine', 'memory-backend=mem', // merges with the profile's -M (q35 or virt)
    '-chardev', `socket,id=vhvsock,path=${qemuValue(vsock.deviceSocket)}`,
    '-device', 'vhost-user-vsock-pci,chardev=vhvsock',
  ];
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
  const args = [
    '-accel', config.accel,
    ...profile.machineArgs,
    ...profile.firmwareArgs,
    '-smp', String(config.cpus),
    '-m', String(config.memoryMiB),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initrd,
    '-append', ['console=' + profile.consoleDevice, 'panic=-1', 'quiet', 'loglevel=3', ...profile.kernelArgs, 'rdinit=/init'].join(' ') + modulesParam,
    '-serial', `file:${config.consoleLog}`,
    '-monitor', 'none',
    '-device', 'virtio-serial-pci,id=vser0,max_ports=' + String(Math.max(31, config.ports.length + 2)),
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
  for (const share of config.shares) {
    const readOnly = share.readOnly ? ',readonly=on' : '';
    args.push('-virtfs', `local,path=${qemuValue(share.hostPath)},mount_tag=${share.tag},security_model=none${readOnly}`);
  }
  if (config.vsock !== undefined) args.push(...vsockArgs(config.vsock, config.memoryMiB));
  return args;
}
