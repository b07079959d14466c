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
}

/** QEMU's option syntax: a comma inside a value is written twice. */
export function qemuValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** The command line: kernel-facts.md's verified one plus our ports and shares. */
export function qemuArgs(config: QemuConfig): string[] {
  const { profile } = config;
  const args = [
    '-accel', config.accel,
    ...profile.machineArgs,
    ...profile.firmwareArgs,
    '-smp', String(config.cpus),
    '-m', String(config.memoryMiB),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initrd,
    '-append', `console=${profile.consoleDevice} panic=-1 quiet loglevel=3 no_timer_check rdinit=/init`, // no_timer_check: a loaded TCG host can miss the IO-APIC timer check and panic
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
  return args;
}
