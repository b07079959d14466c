/**
 * The boot-hang decisions (pure) and the console watcher on a real file that grows as
 * QEMU's would. The whole retry on a real QEMU is in lifecycle.vm.test.ts.
 */
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bootHangLine, MAX_BOOT_ATTEMPTS, shouldBootAgain, watchForBootHang } from '../src/boot-hang.js';

/** The console of the boot that hung in CI (2 vCPUs under TCG), as QEMU wrote it. */
const CI_HANG = `[    0.000000] Linux version 6.1.0-41-amd64
[   48.216412] watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [swapper/0:1]
[   72.216390] watchdog: BUG: soft lockup - CPU#1 stuck for 71s! [swapper/0:1]
`;

describe('bootHangLine (pure)', () => {
  it('finds the first line that says a CPU or task is stuck: soft lockup, RCU stall, hung task', () => {
    expect(bootHangLine(CI_HANG)).toBe('[   48.216412] watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [swapper/0:1]');
    expect(bootHangLine('[ 30.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n')).toBe('[ 30.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:');
    expect(bootHangLine('[ 30.1] rcu: INFO: rcu_sched self-detected stall on CPU\n')).toBe('[ 30.1] rcu: INFO: rcu_sched self-detected stall on CPU');
    expect(bootHangLine('[ 243.0] INFO: task modprobe:81 blocked for more than 120 seconds.\n')).toBe('[ 243.0] INFO: task modprobe:81 blocked for more than 120 seconds.');
  });

  it('a normal boot, watchdog notices and warnings included, is not a hang', () => {
    const normal = [
      '[    0.120000] NMI watchdog: Perf NMI watchdog permanently disabled',
      '[    0.300000] watchdog: Disabling watchdog on nohz_full cores by default',
      '[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000',
      '[    2.000000] rcu: Hierarchical RCU implementation.',
      'vmlink-testvm: ready',
    ].join('\n');
    expect(bootHangLine(normal)).toBeUndefined();
    expect(bootHangLine('')).toBeUndefined();
  });
});

describe('shouldBootAgain (pure)', () => {
  it(`boots again once (${MAX_BOOT_ATTEMPTS} boots in all), and only while the deadline leaves room for a boot`, () => {
    expect(shouldBootAgain(1, 100_000)).toBe(true);
    expect(shouldBootAgain(1, 20_000)).toBe(true);
    expect(shouldBootAgain(1, 19_999)).toBe(false);
    expect(shouldBootAgain(2, 100_000)).toBe(false);
    expect(shouldBootAgain(1, 5_000, 1_000)).toBe(true);
  });
});

describe('watchForBootHang (a real file, written in pieces)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlink-boot-hang-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const until = async (check: () => boolean): Promise<void> => {
    for (let i = 0; i < 100 && !check(); i += 1) await sleep(20);
  };

  it('waits for the file, finds a hang line split across writes once it is whole, calls back once', async () => {
    const log = join(dir, 'console.log');
    const seen: string[] = [];
    const stop = watchForBootHang(log, (line) => seen.push(line), 10);
    try {
      await sleep(50); // no file yet: nothing happens
      await writeFile(log, '[    0.0] Linux version 6.1\n[   48.2] watchdog: BUG: soft lo');
      await sleep(80);
      expect(seen).toEqual([]);
      await appendFile(log, 'ckup - CPU#1 stuck for 45s! [swapper/0:1]\n[   72.2] watchdog: BUG: soft lockup - CPU#1 stuck for 71s!\n');
      await until(() => seen.length > 0);
      await sleep(80);
      expect(seen).toEqual(['[   48.2] watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [swapper/0:1]']);
    } finally {
      stop();
    }
  });

  it('after stop(), a hang line written later is not reported', async () => {
    const log = join(dir, 'console.log');
    const seen: string[] = [];
    const stop = watchForBootHang(log, (line) => seen.push(line), 10);
    await writeFile(log, '[    0.0] booting\n');
    await sleep(50);
    stop();
    await appendFile(log, CI_HANG);
    await sleep(80);
    expect(seen).toEqual([]);
  });
});
