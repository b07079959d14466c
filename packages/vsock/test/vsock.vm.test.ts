// Runs the guest test files (test/guest/*.test.mjs, plain node:test) inside ONE QEMU guest
// where AF_VSOCK loopback (CID 1) works. The built packages are shared over 9p at the same
// path, so the guest imports @vmlink/vsock exactly as a user would.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { runGuestNodeTest, startVm, type Vm } from '@vmlink/testvm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const guestDir = fileURLToPath(new URL('./guest', import.meta.url));
const guestFiles = readdirSync(guestDir).filter((name) => name.endsWith('.test.mjs')).sort();
const BOOT_TIMEOUT_MS = 180_000;
const FILE_TIMEOUT_MS = 600_000;

describe('@vmlink/vsock in a guest (CID 1 loopback)', () => {
  let vm: Vm | undefined;

  beforeAll(async () => {
    vm = await startVm({ share: repoRoot, withPrograms: ['socat'], memoryMiB: 1024, cpus: 2 });
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    await vm?.stop();
  });

  it.each(guestFiles)('%s passes in the guest', async (file) => {
    if (vm === undefined) throw new Error('the guest did not boot');
    const result = await runGuestNodeTest(vm, join(guestDir, file), { timeoutMs: FILE_TIMEOUT_MS });
    expect(result.exitCode, result.output).toBe(0);
  }, FILE_TIMEOUT_MS + 10_000);
});
