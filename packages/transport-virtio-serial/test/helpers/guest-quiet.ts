import type { Vm } from '@vmlink/testvm';

/** A spinning process burns ~100 ticks/s (USER_HZ); an idle one ~0. 10 of 100 is clearly no spin. */
export const QUIET_WINDOW_MS = 1000;
export const QUIET_MAX_TICKS = 10;
/** Liveness: a guest process that is not quiet by then is spinning (or the guest is stuck). */
const QUIET_DEADLINE_MS = 90_000;

export interface QuietWindow {
  /** Guest time from the first sample to the quiet window's end. */
  waitedMs: number;
  /** The quiet window: its length in guest time and the CPU ticks (utime+stime, all threads) the process used in it. */
  windowMs: number;
  ticks: number;
  /** Every window measured before it, as `ticks/ms` (the work the process finished first). */
  busyWindows: string[];
}

interface Sample {
  uptimeMs: number;
  ticks: number;
}

/**
 * One sample of a guest process, through testvm's control channel (not the port under
 * test): the guest's uptime and the process's utime+stime (all its threads, as the
 * guest-side counters of peer-server.mjs).
 */
async function sample(vm: Vm, pid: number): Promise<Sample> {
  const res = await vm.run('cat', ['/proc/uptime', `/proc/${pid}/stat`], { timeoutMs: 60_000 });
  if (res.exitCode !== 0) throw new Error(`cannot read /proc/${pid}/stat in the guest: ${res.stderr}`);
  const [uptimeLine = '', stat = ''] = res.stdout.split('\n');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { uptimeMs: Number(uptimeLine.split(' ')[0]) * 1000, ticks: Number(fields[11]) + Number(fields[12]) };
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once guest process `pid` has been quiet for a whole window (at most
 * QUIET_MAX_TICKS in QUIET_WINDOW_MS of guest time); rejects if it never is within the
 * deadline. Speed-independent: work the process does after an event (closing a
 * Connection, freeing buffers, V8's GC and JIT threads) ends however slow the CPU is (an
 * emulated arm64 guest takes several hundred ms of CPU for it), a spin never does. The
 * wait between samples is the measured window itself, not a guess at how long work takes.
 */
export async function waitGuestQuiet(vm: Vm, pid: number): Promise<QuietWindow> {
  const busyWindows: string[] = [];
  let previous = await sample(vm, pid);
  const first = previous;
  for (;;) {
    await delay(QUIET_WINDOW_MS);
    const next = await sample(vm, pid);
    const windowMs = next.uptimeMs - previous.uptimeMs;
    const ticks = next.ticks - previous.ticks;
    if (windowMs >= QUIET_WINDOW_MS && ticks <= QUIET_MAX_TICKS) {
      return { waitedMs: next.uptimeMs - first.uptimeMs, windowMs, ticks, busyWindows };
    }
    busyWindows.push(`${ticks}/${Math.round(windowMs)}ms`);
    if (next.uptimeMs - first.uptimeMs > QUIET_DEADLINE_MS) {
      throw new Error(`guest process ${pid} was never quiet for ${QUIET_WINDOW_MS} ms (<= ${QUIET_MAX_TICKS} ticks) in ${QUIET_DEADLINE_MS} ms: it spins (windows: ${busyWindows.join(', ')})`);
    }
    previous = next;
  }
}
