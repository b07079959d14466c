// What the CPUs did while a contestant ran (Linux /proc/stat; undefined elsewhere): the
// host's steal (on a virtual machine, the share of time the hypervisor ran something else
// while our vCPUs were runnable; event-loop delays and throughput both move with it) and
// the cores kept busy; and which CPU takes the data disk's interrupts.
import { readFileSync, realpathSync, statSync } from 'node:fs';

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
 * Where the interrupts of the disk holding `path` land: "virtio1: CPU1 100%" (shares of
 * its interrupts since boot, by CPU), or undefined when unknown. A thread that submits
 * from the CPU taking the completions runs faster than one on another CPU (measured
 * here: fio and our engines alike, ~30% at 200k IOPS), so placement is part of a result.
 */
export function diskInterrupts(path) {
  try {
    const dev = statSync(path).dev;
    const major = Math.floor(dev / 256) & 0xfff;
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    const sysPath = realpathSync(`/sys/dev/block/${major}:${minor}`);
    const device = sysPath.split('/').find((part) => /^virtio\d+$/.test(part)) ?? sysPath.split('/').at(-1);
    const lines = readFileSync('/proc/interrupts', 'utf8').split('\n');
    const cpuCount = lines[0].trim().split(/\s+/).length;
    const perCpu = new Array(cpuCount).fill(0);
    for (const line of lines.slice(1)) {
      if (!line.includes(`${device}-`) || line.includes('config')) continue;
      const counts = line.trim().split(/\s+/).slice(1, cpuCount + 1).map(Number);
      counts.forEach((n, cpu) => (perCpu[cpu] += n));
    }
    const total = perCpu.reduce((a, b) => a + b, 0);
    if (total === 0) return undefined;
    const shares = perCpu.map((n, cpu) => [cpu, n / total]).filter(([, share]) => share >= 0.01);
    return `${device}: ${shares.map(([cpu, share]) => `CPU${cpu} ${Math.round(share * 100)}%`).join(', ')}`;
  } catch {
    return undefined;
  }
}
