// startVm({ vsock }): a real host<->guest virtio-vsock device (vhost-user-vsock-pci served
// by @vmlink/vhost-user-vsock in this process). Peers in the guest are socat; on the host
// a minimal hybrid-vsock client (`CONNECT <port>\n` -> `OK ...\n`) written here, and a
// node:net Unix listener on `${vm.vsockPath}_<port>` for the guest's connects to CID 2.
// (The repository is shared only so the guest can ask @vmlink/vsock for its own CID.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startVm, TestVmErrorCode, type Vm } from '../src/index.js';
import { loadDeviceModule } from '../src/vsock-device.js';
import { BOOT_TIMEOUT_MS, formatMs, repoRoot } from './helpers.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** What a hybrid-vsock CONNECT got: the socket after `OK ...\n` (and bytes that came with it), or null when closed without one. */
async function hvsockConnect(udsPath: string, port: number): Promise<{ socket: Socket; reply: string; rest: Buffer } | null> {
  const socket = connect(udsPath);
  await once(socket, 'connect');
  socket.write(`CONNECT ${port}\n`);
  let buffered = Buffer.alloc(0);
  for (;;) {
    const newline = buffered.indexOf(0x0a);
    if (newline >= 0) return { socket, reply: buffered.subarray(0, newline).toString('latin1'), rest: buffered.subarray(newline + 1) };
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (data: Buffer): void => done(data);
      const onEnd = (): void => done(null);
      const done = (value: Buffer | null): void => {
        socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onEnd);
        socket.pause();
        resolve(value);
      };
      socket.on('data', onData).on('end', onEnd).on('close', onEnd).on('error', onEnd);
      socket.resume();
    });
    if (chunk === null) {
      socket.destroy();
      return null;
    }
    buffered = Buffer.concat([buffered, chunk]);
  }
}

/** CONNECT until a guest listener (started in the background) answers OK. */
async function hvsockConnectWhenListening(udsPath: string, port: number): Promise<{ socket: Socket; reply: string; rest: Buffer }> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const result = await hvsockConnect(udsPath, port);
    if (result !== null) return result;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no guest listener answered on vsock port ${port}`);
}

function readAll(socket: Socket, first: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  const chunks = [first];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

describe('startVm({ vsock }): host<->guest vsock through the vhost-user device', () => {
  let vm: Vm;
  let vsockPath: string;

  beforeAll(async () => {
    const started = performance.now();
    vm = await startVm({ vsock: { guestCid: 7 }, share: repoRoot, shareReadOnly: true, withPrograms: ['socat'], memoryMiB: 512 });
    console.log(`testvm: vsock boot ${formatMs(performance.now() - started)} (QEMU to ready ${formatMs(vm.timings.bootMs)})`);
    if (vm.vsockPath === undefined) throw new Error('vm.vsockPath is not set');
    vsockPath = vm.vsockPath;
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    await vm?.stop();
  });

  it('loads vmw_vsock_virtio_transport next to vsock_loopback and exposes the host socket and the CID', async () => {
    expect(vm.info.modules).toEqual(expect.arrayContaining(['vsock_loopback', 'vmw_vsock_virtio_transport']));
    expect(vm.guestCid).toBe(7);
    expect(existsSync(vsockPath)).toBe(true);
    // The guest's own CID comes from the device (vhost-user GET_CONFIG): IOCTL_VM_SOCKETS_GET_LOCAL_CID.
    const cid = await vm.run('node', ['--input-type=module', '-e', "console.log((await import('@vmlink/vsock')).localCid())"], {
      cwd: join(repoRoot, 'packages', 'vsock'),
    });
    expect(cid.stderr).toBe('');
    expect(cid.stdout).toBe('7\n');
  });

  it('host -> guest: CONNECT to a guest socat echo, 256 KiB byte-exact by SHA-256 with half-close', async () => {
    const start = await vm.run('sh', ['-c', 'socat VSOCK-LISTEN:5000,reuseaddr,fork EXEC:cat >/dev/null 2>&1 &']);
    expect(start.exitCode).toBe(0);
    const { socket, reply, rest } = await hvsockConnectWhenListening(vsockPath, 5000);
    expect(reply).toMatch(/^OK \d+$/);
    const data = randomBytes(256 * 1024);
    const echoed = readAll(socket, rest);
    socket.end(data);
    const received = await echoed;
    expect(received.length).toBe(data.length);
    expect(sha256(received)).toBe(sha256(data));
    socket.destroy();
  });

  it('host -> guest: CONNECT to a port nobody listens on is closed without OK', async () => {
    expect(await hvsockConnect(vsockPath, 5999)).toBeNull();
  });

  it('guest -> host: the guest dials CID 2 port P and reaches a Unix listener on `${vsockPath}_P`', async () => {
    const port = 6000;
    const received: Buffer[] = [];
    const server = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('end', () => socket.end(`host saw ${Buffer.concat(received).length} bytes\n`));
    });
    server.listen(`${vsockPath}_${port}`);
    await once(server, 'listening');
    try {
      const result = await vm.run('sh', ['-c', `head -c 100000 /dev/zero | socat -t 30 - VSOCK-CONNECT:2:${port}`]);
      expect(result.stderr).toBe('');
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe('host saw 100000 bytes\n');
    } finally {
      server.close();
    }
  });

  it('guest -> host: a port with no host listener is refused in the guest (reset)', async () => {
    const result = await vm.run('sh', ['-c', 'echo x | socat - VSOCK-CONNECT:2:6999']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/Connection reset by peer|Connection refused|No such device/i);
  });

  it('CID 1 (vsock_loopback) keeps working next to the device', async () => {
    const result = await vm.run('sh', [
      '-c',
      // Dialled until the listener (fork: a dial too early does not use it up) is up.
      'socat VSOCK-LISTEN:5100,reuseaddr,fork EXEC:cat </dev/null >/dev/null 2>&1 & listener=$!; for i in $(seq 200); do out=$(echo loop | socat -t 5 - VSOCK-CONNECT:1:5100 2>/dev/null) && [ -n "$out" ] && echo "$out" && kill $listener && exit 0; sleep 0.1; done; kill $listener; exit 1',
    ]);
    expect(result.stdout).toBe('loop\n');
    expect(result.exitCode).toBe(0);
  });

  it('vm.stop() closes the device and removes its host socket', async () => {
    await vm.stop();
    expect(existsSync(vsockPath)).toBe(false);
  });
});

describe('startVm({ vsock: { device } }): a device the caller made and keeps', () => {
  it(
    'serves the VM with the caller\'s CID and paths, and is still open after vm.stop()',
    async () => {
      const { createVsockDevice } = await loadDeviceModule();
      const dir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-device-'));
      const device = await createVsockDevice({ socket: join(dir, 'device.sock'), udsPath: join(dir, 'v.sock'), guestCid: 11 });
      try {
        const vm = await startVm({ vsock: { device }, withPrograms: ['socat'], memoryMiB: 512 });
        try {
          expect(vm.vsockPath).toBe(device.udsPath);
          expect(vm.guestCid).toBe(11);
          const server = createServer((socket) => socket.end('from the host\n'));
          server.listen(`${device.udsPath}_7000`);
          await once(server, 'listening');
          const result = await vm.run('sh', ['-c', 'socat -t 30 - VSOCK-CONNECT:2:7000 </dev/null']);
          server.close();
          expect(result).toMatchObject({ exitCode: 0, stdout: 'from the host\n' });
        } finally {
          await vm.stop();
        }
        expect(existsSync(device.udsPath)).toBe(true);
        expect((device as { closed?: boolean }).closed).toBe(false);
      } finally {
        await device.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
    BOOT_TIMEOUT_MS + 60_000,
  );
});

describe('vsock and a QEMU that dies at once (no boot)', () => {
  const openFds = (): number => readdirSync('/proc/self/fd').length;

  it('the device testvm made is closed (no fd, no file left); a caller device stays open', async () => {
    const privateTmp = await mkdtemp(join(tmpdir(), 'vmlink-testvm-vsockfail-'));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp; // the VM's temp folder (and the device's sockets) go here
    const fakeQemu = join(privateTmp, 'fake-qemu');
    await writeFile(fakeQemu, '#!/bin/sh\necho "fake qemu: no vhost-user today" >&2\nexit 1\n');
    await chmod(fakeQemu, 0o755);
    try {
      const before = openFds();
      await expect(startVm({ vsock: true, qemuBinary: fakeQemu })).rejects.toMatchObject({
        code: TestVmErrorCode.BOOT_FAILED,
        message: expect.stringMatching(/fake qemu: no vhost-user today/),
      });
      expect(await readdir(privateTmp)).toEqual(['fake-qemu']);
      expect(openFds()).toBe(before);

      const { createVsockDevice } = await loadDeviceModule();
      const device = await createVsockDevice({ socket: join(privateTmp, 'd.sock'), udsPath: join(privateTmp, 'v.sock'), guestCid: 5 });
      try {
        await expect(startVm({ vsock: { device }, qemuBinary: fakeQemu })).rejects.toMatchObject({ code: TestVmErrorCode.BOOT_FAILED });
        expect((device as { closed?: boolean }).closed).toBe(false);
        expect(existsSync(device.udsPath)).toBe(true);
      } finally {
        await device.close();
      }
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
      await rm(privateTmp, { recursive: true, force: true });
    }
  }, 120_000);
});
