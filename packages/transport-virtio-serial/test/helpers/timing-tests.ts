// The hang-up tests of the host<->guest suite, shared by the x86_64 guest
// (host-guest.vm.test.ts) and the emulated arm64 guest (packages/testvm/test/arm64):
// reconnect x100 with a request in flight, and the host leaving with a guest write pending
// or a Connection that does not read. "No spin while the host is away" is measured in a
// way that holds at any CPU speed: the guest listener's native wake-ups over the whole
// absence (a count), and the host stays away until the guest server has been quiet for a
// whole window (guest-quiet.ts), which a spinning process never is.
import { expect, it } from 'vitest';
import type { Vm } from '@vmlink/testvm';
import type { Transport } from '@vmlink/transport';
import { QUIET_MAX_TICKS, QUIET_WINDOW_MS, waitGuestQuiet, type QuietWindow } from './guest-quiet.js';
import { reconnectLoop, readGuestStats, type GuestStats } from './reconnect.js';
import type { GuestServer } from './vm.js';

/** A listener that does not spin wakes up a few times per absence (the hang-up, the return). */
const MAX_WAKEUPS_PER_ABSENCE = 20;
/** Liveness only: how long the guest may take to report that it saw the host leave. */
const HANGUP_SEEN_DEADLINE_MS = 120_000;

interface HangupStats extends GuestStats {
  floods: Array<{ issued: number; settled: number; errors: Record<string, number> }>;
  paused: string[];
}

export interface HangupTestTargets {
  vm(): Vm;
  /** peer-server.mjs instances (startGuestServer), each on a port of its own used by nothing else. */
  reconnectServer(): { server: GuestServer; portPath: string };
  hangupServer(): { server: GuestServer; portPath: string };
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `server` printed `line` (a whole line) `count` times; polls its collected output. */
async function outputLines(server: GuestServer, line: string, count: number, what: string): Promise<void> {
  const deadline = Date.now() + HANGUP_SEEN_DEADLINE_MS;
  while (server.output().split('\n').filter((l) => l === line).length < count) {
    if (Date.now() > deadline) throw new Error(`the guest server did not print "${line}" (${what}) within ${HANGUP_SEEN_DEADLINE_MS} ms:\n${server.output()}`);
    await delay(50);
  }
}

/** After the host closed Connection `n`: the guest saw it go, then the host stays away until the guest server is quiet. */
async function stayAway(targets: () => { vm: Vm; server: GuestServer }, n: number): Promise<QuietWindow> {
  const { vm, server } = targets();
  await outputLines(server, `closed ${n}`, 1, `it saw the host close Connection ${n}`);
  return waitGuestQuiet(vm, server.pid);
}

/** Registers the two tests (vitest `it`) in the caller's describe block. */
export function hangupTests(host: Transport, targets: HangupTestTargets, timeoutMs: { reconnect: number; hangup: number }): void {
  it('host disconnects and reconnects 100 times with a request in flight: no hang, no spin, no stale byte, every request settled', async () => {
    const { server, portPath } = targets.reconnectServer();
    const address = `virtio-serial+unix:${portPath}`;
    const host100 = await reconnectLoop(host, address, 100, (n) => stayAway(() => ({ vm: targets.vm(), server }), n));
    const guest = await readGuestStats(host, address);
    const quiet = host100.absences;
    console.log(`reconnect x100: answered ${host100.answered}, failed ${JSON.stringify(host100.failureCodes)}; guest answered ${guest.answered}, failed ${JSON.stringify(guest.failed)}; away (until quiet) ${quiet.map((q) => `${Math.round(q.waitedMs)} ms, busy before: [${q.busyWindows.join(' ')}], quiet ${q.ticks} ticks/${Math.round(q.windowMs)} ms`).join('; ')}`);
    const context = `host: ${JSON.stringify(host100)}\nguest: ${JSON.stringify(guest)}\nguest output:\n${server.output()}`;

    // Host side: every request settled, and every reply that came was exactly ours.
    expect(host100.answered + host100.failed, context).toBe(100);
    expect(host100.wrongReplies, context).toEqual([]);
    // Only the requests the host abandoned (ways 1 and 2) may fail; ways 0 (wait) and 3 (end()) are always answered.
    expect(Object.keys(host100.failureCodes), context).toEqual(host100.failed > 0 ? ['ABORT_ERR'] : []);
    expect(host100.answered, context).toBeGreaterThanOrEqual(50);
    // Guest side: one Connection per dial (+1 for the stats one), no stale first line,
    // every request it saw answered or failed with a code.
    expect(guest.connections, context).toBe(101);
    expect(guest.stale, context).toEqual([]);
    expect(Object.keys(guest.failed).every((code) => code !== 'NO_CODE'), context).toBe(true);
    // No spin while the host was away (4 times, after Connections 25, 50, 75 and 100): the
    // guest server went quiet (a spinning one never does) ...
    expect(quiet.length, context).toBe(4);
    for (const window of quiet) expect(window.ticks, context).toBeLessThanOrEqual(QUIET_MAX_TICKS);
    // ... and its listener woke only a few times over each of those absences (each spans
    // a quiet window; under emulation other absences may be that long too).
    const longAbsences = guest.away.filter((a) => a.ms >= QUIET_WINDOW_MS);
    expect(longAbsences.length, context).toBeGreaterThanOrEqual(quiet.length);
    for (const absence of longAbsences) expect(absence.wakeups, context).toBeLessThanOrEqual(MAX_WAKEUPS_PER_ABSENCE);
  }, timeoutMs.reconnect);

  it('the host leaves with a guest write pending (EAGAIN), then with a guest Connection that does not read: both see the hang-up, no spin', async () => {
    const { server, portPath } = targets.hangupServer();
    const address = `virtio-serial+unix:${portPath}`;

    // 1. The guest writes until the port refuses (the host does not read), then the host leaves.
    const flooded = await host.dial(address, { timeout: 60_000 });
    flooded.on('error', () => {});
    flooded.pause();
    flooded.write('flood\n');
    await outputLines(server, 'flood stalled', 1, 'its writes stopped going out');
    flooded.destroy();
    // Away until the guest saw the hang-up and its server has been quiet for a whole window.
    const quiet = await stayAway(() => ({ vm: targets.vm(), server }), 1);

    // 2. The host sends more than the guest reads ahead of a paused Connection, then leaves.
    const paused = await host.dial(address, { timeout: 60_000 });
    paused.on('error', () => {});
    paused.write('pause\n');
    paused.write(Buffer.alloc(4 * 1024 * 1024, 0x70));
    await outputLines(server, 'pause full', 1, 'its read-ahead filled');
    paused.destroy();
    await outputLines(server, 'closed 2', 1, 'it saw the host close the paused Connection');

    const guest = (await readGuestStats(host, address)) as HangupStats;
    console.log(`hang-up: away (until quiet) ${Math.round(quiet.waitedMs)} ms, busy before: [${quiet.busyWindows.join(' ')}], quiet ${quiet.ticks} ticks/${Math.round(quiet.windowMs)} ms; guest away ${JSON.stringify(guest.away)}`);
    const context = `guest: ${JSON.stringify(guest)}\nquiet: ${JSON.stringify(quiet)}\nguest output:\n${server.output()}`;
    const [floodResult] = guest.floods;
    expect(floodResult, context).toBeDefined();
    // Every write was called back, ok or reset. "flood stalled" does not prove a write is
    // pending when the host leaves: QEMU discards what the guest queued once the host
    // socket is gone, so the port may take the refused write before the guest learns of
    // the hang-up (then it settles ok). At most the one pending write can be dropped.
    expect(floodResult?.settled, context).toBe(floodResult?.issued);
    expect(Object.keys(floodResult?.errors ?? {}).filter((key) => key !== 'ok' && key !== 'ECONNRESET:write'), context).toEqual([]);
    expect(floodResult?.errors['ECONNRESET:write'] ?? 0, context).toBeLessThanOrEqual(1);
    // Nothing was taken for the host's return until it came back: exactly three
    // Connections (flood, pause, stats), and the first absence spans the quiet window,
    // which began after the guest had printed that it saw the hang-up.
    expect(guest.connections, context).toBe(3);
    expect(guest.away.length, context).toBe(2);
    expect(guest.away[0]?.ms, context).toBeGreaterThanOrEqual(quiet.windowMs);
    // No spin while away: quiet (a spinning server never is), few listener wake-ups.
    expect(quiet.ticks, context).toBeLessThanOrEqual(QUIET_MAX_TICKS);
    expect(guest.away[0]?.wakeups, context).toBeLessThanOrEqual(MAX_WAKEUPS_PER_ABSENCE);
    expect(guest.paused, context).toEqual(['ECONNRESET']);
  }, timeoutMs.hangup);
}
