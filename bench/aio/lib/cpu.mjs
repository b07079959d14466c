// Host CPU steal: on a virtual machine, the share of time the hypervisor ran something
// else while our vCPUs were runnable. Event-loop delays and throughput both move with it,
// so every row records it (Linux /proc/stat; undefined elsewhere).
import { readFileSync } from 'node:fs';

/** The first line of /proc/stat as numbers (user nice system idle iowait irq softirq steal ...). */
export function cpuSnapshot() {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  } catch {
    return undefined;
  }
}

/** Steal as a share (0..1) of all CPU time between two snapshots, or undefined. */
export function stealShare(before, after) {
  if (before === undefined || after === undefined || before.length < 8) return undefined;
  const delta = after.map((v, i) => v - (before[i] ?? 0));
  // Fields past steal (guest, guest_nice) are already counted in user and nice.
  const total = delta.slice(0, 8).reduce((a, b) => a + b, 0);
  return total > 0 ? delta[7] / total : undefined;
}
