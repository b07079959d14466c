import { existsSync, fstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';

/** One interrupt line of a device: how many it raised on each CPU so far, and the CPUs it goes to now. */
export interface DeviceInterrupt {
  /** The line's name (/sys/kernel/irq/N/actions), e.g. "virtio1-req.0"; '' when it has none. */
  readonly name: string;
  /** /sys/kernel/irq/N/per_cpu_count: interrupts taken, indexed by CPU number. */
  readonly perCpuCount: readonly number[];
  /** /proc/irq/N/effective_affinity_list (smp_affinity_list where the kernel has no effective one). */
  readonly cpus: readonly number[];
}

/** A Linux CPU list ("0-3,8,10-11") as the CPU numbers; undefined when it is not one. */
export function parseCpuList(text: string): number[] | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const cpus = new Set<number>();
  for (const part of trimmed.split(',')) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (range === null) return undefined;
    const first = Number(range[1]);
    const last = range[2] === undefined ? first : Number(range[2]);
    if (last < first || last - first > 4096) return undefined;
    for (let cpu = first; cpu <= last; cpu++) cpus.add(cpu);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** The CPUs this process may run on (its main thread's Cpus_allowed_list); undefined when unreadable. */
export function allowedCpus(): number[] | undefined {
  try {
    const line = /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return line === null ? undefined : parseCpuList(line[1] ?? '');
  } catch {
    return undefined;
  }
}

/**
 * The interrupt lines of the block device `fd` is open on, or of the one holding its file: its disk's
 * sysfs directory, walked up to the PCI function that owns MSI vectors (a partition's
 * disk, a virtio disk's PCI device). Undefined when the file is on no block device
 * (tmpfs, a pipe), on a virtual one (dm, md, loop: their interrupts are their members'),
 * on one without MSI, or when sysfs or procfs cannot be read.
 */
export function deviceInterrupts(fd: number): DeviceInterrupt[] | undefined {
  try {
    const disk = blockDeviceOf(fstatSync(fd, { bigint: true }));
    if (disk === undefined) return undefined;
    let dir = realpathSync(`/sys/dev/block/${disk}`);
    while (dir.startsWith('/sys/devices/') && !existsSync(`${dir}/msi_irqs`)) dir = dirname(dir);
    if (!dir.startsWith('/sys/devices/')) return undefined;
    const lines = readdirSync(`${dir}/msi_irqs`).filter((name) => /^\d+$/.test(name));
    const found: DeviceInterrupt[] = [];
    for (const irq of lines) {
      const perCpuCount = readFileSync(`/sys/kernel/irq/${irq}/per_cpu_count`, 'utf8').trim().split(',').map(Number);
      const cpus = parseCpuList(readCpuListOf(irq));
      if (cpus === undefined || perCpuCount.some((count) => !Number.isFinite(count))) return undefined;
      found.push({ name: readFileSync(`/sys/kernel/irq/${irq}/actions`, 'utf8').trim(), perCpuCount, cpus });
    }
    return found.length === 0 ? undefined : found;
  } catch {
    return undefined;
  }
}

/** What blockDeviceOf reads of an fstat result (bigint). */
export interface DeviceStat {
  readonly dev: bigint;
  readonly rdev: bigint;
  isBlockDevice(): boolean;
}

/**
 * The block device to look up, as /sys/dev/block names it ("254:0"): a block device opened
 * directly is its own (st_rdev), a file lives on st_dev's; undefined for major 0 (tmpfs,
 * procfs, devtmpfs nodes: no block device). dev_t decoded as glibc's gnu_dev_major and
 * gnu_dev_minor do (12+20-bit major, 8+24-bit minor).
 */
export function blockDeviceOf(stat: DeviceStat): string | undefined {
  const dev = stat.isBlockDevice() ? stat.rdev : stat.dev;
  const major = ((dev & 0xfff00n) >> 8n) | ((dev & 0xfffff00000000000n) >> 32n);
  const minor = (dev & 0xffn) | ((dev & 0xffffff00000n) >> 12n);
  return major === 0n ? undefined : `${major}:${minor}`;
}

function readCpuListOf(irq: string): string {
  try {
    return readFileSync(`/proc/irq/${irq}/effective_affinity_list`, 'utf8');
  } catch {
    return readFileSync(`/proc/irq/${irq}/smp_affinity_list`, 'utf8');
  }
}
