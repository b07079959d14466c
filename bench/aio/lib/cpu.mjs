// What the CPUs did while a contestant ran (Linux /proc/stat; undefined elsewhere): the
// host's steal (on a virtual machine, the share of time the hypervisor ran something else
// while our vCPUs were runnable; event-loop delays and throughput both move with it) and
// the cores kept busy; and which CPU takes the data disk's interrupts.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { deviceInterrupts } from '@vmlink/aio-threadpool';

/** The first line of /proc/stat as numbers (user nice system idle iowait irq softirq steal ...). */
export function cpuSnapshot() {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  } catch {
    return undefined;
  }
}

/**
 * The time each field gained between two snapshots, and their total, or undefined. Fields
 * past steal (guest, guest_nice) are already counted in user and nice: not in the total.
 */
function elapsed(before, after) {
  if (before === undefined || after === undefined || before.length < 8) return undefined;
  const delta = after.map((v, i) => v - (before[i] ?? 0));
  const total = delta.slice(0, 8).reduce((a, b) => a + b, 0);
  return total > 0 ? { delta, total } : undefined;
}

/** Steal as a share (0..1) of all CPU time between two snapshots, or undefined. */
export function stealShare(before, after) {
  const time = elapsed(before, after);
  return time === undefined ? undefined : time.delta[7] / time.total;
}

/**
 * Cores busy (all CPUs, any process, kernel and interrupts included) between two
 * snapshots: what a contestant cost the machine while it ran on an otherwise idle one.
 * Idle, iowait and steal are not busy. Undefined when unknown.
 */
export function busyCores(before, after, cores) {
  const time = elapsed(before, after);
  if (time === undefined) return undefined;
  const { delta, total } = time;
  const notBusy = delta[3] + delta[4] + delta[7];
  return ((total - notBusy) / total) * cores;
}

/**
 * Where the interrupts of the disk holding `path` land: "virtio1-req.0: CPU1 100%" (its
 * busiest line's name, then the shares of all its interrupts since boot, by CPU), or
 * undefined when unknown (the thread pool's deviceInterrupts: a disk with MSI lines). A
 * thread that submits from the CPU taking the completions runs faster than one on another
 * CPU (measured here: fio and our engines alike, ~30% at 200k IOPS), so placement is part
 * of a result.
 */
export function diskInterrupts(path) {
  let fd;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const lines = deviceInterrupts(fd);
    if (lines === undefined) return undefined;
    const perCpu = [];
    for (const line of lines) line.perCpuCount.forEach((n, cpu) => (perCpu[cpu] = (perCpu[cpu] ?? 0) + n));
    const total = perCpu.reduce((a, b) => a + b, 0);
    if (total === 0) return undefined;
    const lineTotal = (line) => line.perCpuCount.reduce((a, b) => a + b, 0);
    const busiest = lines.reduce((a, b) => (lineTotal(b) > lineTotal(a) ? b : a));
    const shares = perCpu.map((n, cpu) => [cpu, n / total]).filter(([, share]) => share >= 0.01);
    return `${busiest.name || 'disk'}: ${shares.map(([cpu, share]) => `CPU${cpu} ${Math.round(share * 100)}%`).join(', ')}`;
  } finally {
    closeSync(fd);
  }
}
