// The fd checks the other tests use (helpers/fd-table.ts) catch a real leak: a device that
// is never closed leaves its sockets, the memfd mapping's fd, the ring eventfds and its
// timers open, and both checks name them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GuestDriverHarness } from './harness/driver-harness.js';
import { fdsClosedSince, fdsLeakedSince, fdsOpenedSince, openFds, RUNTIME_LAZY_KINDS } from './helpers/fd-table.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-vuv-fd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** One device with a driver set up and a packet each way (a full cycle). */
async function cycle(close: boolean): Promise<GuestDriverHarness> {
  const h = await GuestDriverHarness.create({ dir, name: `fd${counter++}`, guestCid: 3, txNotifyDelayUs: 1000 });
  h.setup();
  h.listen(5000);
  if (close) await h.close();
  return h;
}

describe('fd checks (helpers/fd-table.ts)', () => {
  it('after a warm-up cycle, a closed cycle opens nothing; an unclosed one is named fd by fd, eventfds included', async () => {
    await cycle(true); // warm-up: whatever the runtime opens lazily for this is open now
    const before = openFds();
    await cycle(true);
    expect(fdsOpenedSince(before)).toEqual([]);
    const leaked = await cycle(false);
    try {
      const opened = fdsOpenedSince(before);
      // the hybrid-vsock listener, both ends of the vhost-user socketpair, the guest RAM memfd, the ring eventfds
      expect(opened.filter((e) => /socket:\[\d+\]$/.test(e)).length).toBeGreaterThanOrEqual(3);
      expect(opened.filter((e) => e.endsWith('anon_inode:[eventfd]')).length).toBeGreaterThanOrEqual(6);
      expect(opened.some((e) => e.includes('memfd:'))).toBe(true);
      // the filtered check (for tests that cannot warm up) still sees the sockets and the memfd
      const filtered = fdsLeakedSince(before);
      expect(filtered.length).toBeGreaterThanOrEqual(4);
      expect(filtered.every((e) => !RUNTIME_LAZY_KINDS.test(e.split(' -> ')[1]!))).toBe(true);
    } finally {
      await leaked.close();
    }
    expect(fdsOpenedSince(before)).toEqual([]);
  });

  it('fdsClosedSince names what went away', async () => {
    const h = await cycle(false);
    const before = openFds();
    await h.close();
    const closed = fdsClosedSince(before);
    expect(closed.filter((e) => e.endsWith('anon_inode:[eventfd]')).length).toBeGreaterThanOrEqual(6);
    expect(closed.some((e) => e.includes('memfd:'))).toBe(true);
  });
});
