import { open } from 'node:fs/promises';

/**
 * A guest kernel that hangs in its own boot (seen in CI: "watchdog: BUG: soft lockup -
 * CPU#1 stuck for 45s! [swapper/0:1]" under TCG with 2 vCPUs on 2 busy host cores) never
 * reaches our init, so no test of ours ran: testvm kills it as soon as the kernel says so
 * and boots once more, instead of waiting out the whole timeout and failing the caller.
 * A kernel that says nothing of the kind is never booted again: that is a real failure.
 */

/** Kernel lines that mean "a CPU or a task is stuck": a soft lockup, an RCU stall, a hung task. */
const HANG_LINE = /BUG: soft lockup - CPU#\d+ stuck|rcu: INFO: \w+ (?:self-)?detected stall|INFO: task \S+ blocked for more than \d+ seconds/;

/** The first console line that says the guest kernel hung, if any. */
export function bootHangLine(console: string): string | undefined {
  for (const line of console.split('\n')) {
    if (HANG_LINE.test(line)) return line.trim();
  }
  return undefined;
}

/** Boots in all, the first included: one more after a hang. */
export const MAX_BOOT_ATTEMPTS = 2;

/**
 * Whether to boot again after attempt `attempt` hung: only while attempts are left and
 * the caller's deadline leaves at least `minMsLeft` (a boot takes 7-20 s under TCG).
 */
export function shouldBootAgain(attempt: number, msLeft: number, minMsLeft = 20_000): boolean {
  return attempt < MAX_BOOT_ATTEMPTS && msLeft >= minMsLeft;
}

/**
 * Watches the console log a booting guest writes: `onHang` gets the first hang line.
 * Reads only what is new each time (from where it stopped), so the cost stays small;
 * a line split across two reads is found once it is whole. Returns the stop function.
 */
export function watchForBootHang(consoleLog: string, onHang: (line: string) => void, intervalMs = 250): () => void {
  let offset = 0;
  let partial = '';
  let stopped = false;
  let reading = false;
  const poll = async (): Promise<void> => {
    if (reading || stopped) return;
    reading = true;
    let handle;
    try {
      handle = await open(consoleLog, 'r');
      const { size } = await handle.stat();
      if (size <= offset) return;
      const buffer = Buffer.alloc(Math.min(size - offset, 1 << 20));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      offset += bytesRead;
      const text = partial + buffer.subarray(0, bytesRead).toString('latin1');
      const end = text.lastIndexOf('\n');
      partial = end === -1 ? text.slice(-4096) : text.slice(end + 1).slice(-4096);
      const line = end === -1 ? undefined : bootHangLine(text.slice(0, end));
      if (line !== undefined && !stopped) {
        stopped = true;
        clearInterval(timer);
        onHang(line);
      }
    } catch {
      // Not there yet (QEMU creates it) or gone (QEMU stopped): look again next time.
    } finally {
      reading = false;
      await handle?.close();
    }
  };
  const timer = setInterval(() => void poll(), intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
