export interface QemuVsockArgsOptions {
  /** The device's vhost-user socket (`VsockDevice.socket`). */
  socket: string;
  /** Guest memory in MiB: the shared memfd backend must be exactly `-m`. */
  memoryMiB: number;
  /** QEMU ids to use (change them if the command line has these already). */
  chardevId?: string;
  memoryId?: string;
  /**
   * `'mmio'` for machines without PCI (`-M microvm`): `vhost-user-vsock-device` on
   * virtio-mmio; the guest needs its `virtio_mmio` driver. Default `'pci'`.
   */
  bus?: 'pci' | 'mmio';
}

/** QEMU's option syntax: a comma inside a value is written twice. */
function qemuValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/**
 * The QEMU arguments that attach a device: guest RAM from a shared memfd (a vhost-user
 * backend must map it) and `vhost-user-vsock-pci` on the device's socket. `-machine
 * memory-backend=` merges with an earlier `-M q35` (or `-M microvm`, with `bus: 'mmio'`).
 */
export function qemuVsockArgs(options: QemuVsockArgsOptions): string[] {
  const chardev = options.chardevId ?? 'vmlink-vsock';
  const memory = options.memoryId ?? 'vmlink-mem';
  return [
    '-object', `memory-backend-memfd,id=${memory},size=${options.memoryMiB}M,share=on`,
    '-machine', `memory-backend=${memory}`,
    '-chardev', `socket,id=${chardev},path=${qemuValue(options.socket)}`,
    '-device', `${options.bus === 'mmio' ? 'vhost-user-vsock-device' : 'vhost-user-vsock-pci'},chardev=${chardev}`,
  ];
}
