// startVm({ machine: 'microvm', vsock: true }): QEMU's -M microvm with every device on
// virtio-mmio, the vsock device as vhost-user-vsock-device served by
// @vmlink/vhost-user-vsock in this process. socat in the guest, node:net on the host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { startVm, type Vm } from '../src/index.js';
import { BOOT_TIMEOUT_MS } from './helpers.js';

let vm: Vm;

beforeAll(async () => {
  vm = await startVm({ machine: 'microvm', vsock: true, withPrograms: ['socat'], timeoutMs: BOOT_TIMEOUT_MS });
}, BOOT_TIMEOUT_MS);

afterAll(async () => {
  await vm?.stop();
}, 60_000);

describe("startVm({ machine: 'microvm', vsock: true })", () => {
  it('boots on virtio-mmio: the vsock device is bound by the guest driver, commands run', async () => {
    // Every virtio device's driver, and the transport each sits on (virtio-mmio, found through ACPI as LNRO0005).
    const run = await vm.run('sh', ['-c', 'for d in /sys/bus/virtio/devices/*; do echo "$(basename $(readlink $d/driver)) $(basename $(dirname $(readlink -f $d)))"; done | sort']);
    expect(run.exitCode, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.map((line) => line.split(' ')[0])).toEqual(['virtio_console', 'vmw_vsock_virtio_transport']);
    for (const line of lines) expect(line).toMatch(/ LNRO0005:\d+$/);
  }, 120_000);

  it('guest -> host: socat VSOCK-CONNECT:2:P reaches a Unix listener on <vsockPath>_P and reads its reply', async () => {
    const server = createServer((socket) => {
      socket.once('data', (data: Buffer) => socket.end(`host got: ${data.toString().trim()}\n`));
    });
    await new Promise<void>((resolve) => server.listen(`${vm.vsockPath!}_6000`, resolve));
    try {
      const run = await vm.run('sh', ['-c', 'echo hello from microvm | socat -t 30 - VSOCK-CONNECT:2:6000'], { timeoutMs: 120_000 });
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toBe('host got: hello from microvm\n');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 180_000);

  it('host -> guest: CONNECT P on vsockPath gets OK P, the bytes reach socat VSOCK-LISTEN:P', async () => {
    const listening = vm.run('sh', ['-c', 'socat -u VSOCK-LISTEN:5000 -'], { timeoutMs: 120_000 });
    let reply = '';
    for (let attempt = 0; !reply.startsWith('OK ') && attempt < 300; attempt++) {
      const socket = connect(vm.vsockPath!);
      await once(socket, 'connect');
      socket.write('CONNECT 5000\n');
      reply = await new Promise<string>((resolve) => {
        let got = '';
        socket.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.includes('\n')) resolve(got);
        });
        socket.once('close', () => resolve(got));
      });
      if (reply.startsWith('OK ')) socket.end('hello from the host\n');
      else await new Promise((resolve) => setTimeout(resolve, 100)); // no event says the guest listens yet
    }
    expect(reply).toBe('OK 5000\n');
    const run = await listening;
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe('hello from the host\n');
  }, 180_000);
});
