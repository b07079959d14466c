// The device under a real QEMU 7.2 TCG guest: vhost-user-vsock-pci over the device's
// socket, the Debian guest's own virtio-vsock driver, socat in the guest, Node sockets on
// the host. Bytes both ways checked by SHA-256; refusals both ways; the device outlives
// the QEMU and serves the next one.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVm, type Vm } from '@vmlink/testvm';
import { loadBinding } from '@vmlink/native';
import { createVsockDevice, totalDropped, type VsockDevice } from '../src/index.js';
import { hostConnect as hybridConnect, hostConnectWhenListening as hybridConnectWhenListening, hostListen as hybridListen, readAll, sha256, type HostConnection } from './helpers/hybrid-vsock.js';

const MEMORY_MIB = 512;
// The repo, shared into the guest so its node can load @vmlink/vsock (SEQPACKET client).
const REPO = join(__dirname, '..', '..', '..');
const helpers = loadBinding().vhostUserTestHelpers;

let dir: string;
let dev: VsockDevice;
let vm: Vm;
const logs: string[] = [];
const servers: Server[] = [];

/** Boots a guest on our device: testvm's `vsock: { device }` attaches it and loads the guest driver; the device stays ours. */
async function bootGuest(): Promise<Vm> {
  const guest = await startVm({ share: [join(dir, 'share'), REPO], withPrograms: ['socat'], memoryMiB: MEMORY_MIB, timeoutMs: 180_000, vsock: { device: dev } });
  // startVm resolves only after the device's 'driver-ready': the guest's own driver runs the rings.
  expect(guest.info.modules).toContain('vmw_vsock_virtio_transport');
  expect(dev.stats().driverReady).toBe(true);
  expect(guest.vsockPath).toBe(dev.udsPath);
  return guest;
}

const hostConnect = (port: number, firstData?: Buffer): Promise<HostConnection> => hybridConnect(dev.udsPath, port, firstData);
const hostConnectWhenListening = (port: number, firstData?: Buffer): Promise<HostConnection> => hybridConnectWhenListening(dev.udsPath, port, firstData);
const hostListen = (port: number, onConnection: (socket: Socket) => void): Promise<Server> => hybridListen(dev.udsPath, port, onConnection);

/** Starts a socat listener in the guest in the background (it outlives the command). */
async function guestBackground(command: string): Promise<void> {
  const started = await vm.run('sh', ['-c', `${command} >/dev/null 2>&1 </dev/null &`]);
  expect(started.exitCode).toBe(0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmlink-vuv-'));
  await mkdir(join(dir, 'share'));
  dev = await createVsockDevice({ socket: join(dir, 'vhost.sock'), udsPath: join(dir, 'v.sock'), guestCid: 3, seqpacket: true });
  dev.on('log', (line) => logs.push(line));
  vm = await bootGuest();
}, 300_000);

afterAll(async () => {
  for (const server of servers) server.close();
  await vm?.stop();
  await dev?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('vhost-user-vsock under QEMU TCG', () => {
  it('host -> guest: OK <guest port>, data sent right behind the CONNECT line, 64 KiB echoed, half-close', async () => {
    await guestBackground('socat VSOCK-LISTEN:5000,reuseaddr,fork EXEC:cat');
    const payload = randomBytes(64 * 1024);
    const { socket, reply, rest } = await hostConnectWhenListening(5000, payload.subarray(0, 100));
    expect(reply).toBe('OK 5000\n');
    socket.end(payload.subarray(100)); // half-close: cat sees EOF after the last byte and ends
    const echoed = await readAll(socket, rest);
    expect(echoed.length).toBe(payload.length);
    expect(sha256(echoed)).toBe(sha256(payload));
  }, 120_000);

  it('host -> guest: 4 MiB checked by SHA-256 in the guest', async () => {
    const payload = randomBytes(4 * 1024 * 1024);
    const result = vm.run('sh', ['-c', 'socat -u VSOCK-LISTEN:5001,reuseaddr STDOUT | sha256sum'], { timeoutMs: 120_000 });
    const { socket, reply } = await hostConnectWhenListening(5001);
    expect(reply).toBe('OK 5001\n');
    await new Promise<void>((resolve, reject) => socket.end(payload, () => resolve()).once('error', reject));
    const done = await result;
    expect(done.stdout.split(' ')[0]).toBe(sha256(payload));
    socket.destroy();
  }, 180_000);

  it('guest -> host: 4 MiB to ${udsPath}_6000 checked by SHA-256 on the host, reply read back in the guest', async () => {
    let receivedDigest!: (digest: string) => void;
    let receiveFailed!: (err: Error) => void;
    const received = new Promise<string>((resolve, reject) => ((receivedDigest = resolve), (receiveFailed = reject)));
    // Listening before the guest connects (awaited, not guessed).
    servers.push(
      await hostListen(6000, (s) => {
        const hash = createHash('sha256');
        s.on('data', (c: Buffer) => hash.update(c));
        s.once('end', () => {
          const digest = hash.digest('hex');
          s.end(`${digest}\n`); // answered after the guest's half-close
          receivedDigest(digest);
        });
        s.once('error', receiveFailed);
      }),
    );
    const guest = await vm.run('sh', ['-c', 'head -c 4194304 /dev/urandom > /tmp/g2h && sha256sum /tmp/g2h && socat -t 60 - VSOCK-CONNECT:2:6000 < /tmp/g2h'], {
      timeoutMs: 120_000,
    });
    expect(guest.exitCode, guest.stderr).toBe(0);
    const [guestDigest, hostReply] = guest.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    expect(await received).toBe(guestDigest);
    expect(hostReply).toBe(guestDigest);
  }, 180_000);

  it('SEQPACKET guest -> host: the guest kernel\'s seqpacket socket, messages echoed one by one with boundaries kept', async () => {
    const listenFd = loadBinding().unixListen(`${dev.udsPath}_7300`, 16, 'seqpacket');
    const script = join(dir, 'share', 'seq.mjs');
    await writeFile(
      script,
      `import { connectSeqpacket } from '${REPO}/packages/vsock/dist/index.js';
      import { createHash } from 'node:crypto';
      const big = Buffer.alloc(20000, 7); big.write('start'); 
      const sent = [Buffer.from('one'), big, Buffer.from('three')];
      const got = [];
      const s = connectSeqpacket({ cid: 2, port: 7300, timeout: 10000 }, () => { for (const m of sent) s.send(m); });
      s.on('message', (m) => { got.push(m); if (got.length === sent.length) { s.end(); } });
      s.on('error', (e) => { console.error(e.code, e.message); process.exit(1); });
      s.on('close', () => { console.log(got.map((m, i) => m.equals(sent[i]) ? m.length : 'MISMATCH').join(',')); });
      `,
    );
    const guest = vm.run('node', [script], { timeoutMs: 60_000 });
    let hostFd: number | null = null;
    let hostClosed = false;
    const deadline = Date.now() + 60_000;
    const echoed: number[] = [];
    // Raw SOCK_SEQPACKET fds have no Node event: poll them until the guest is done.
    let done: Awaited<typeof guest> | undefined;
    void guest.then((r) => (done = r));
    while (done === undefined && Date.now() < deadline) {
      if (!hostClosed) hostFd ??= helpers.accept(listenFd);
      for (let r = hostFd === null ? null : helpers.recv(hostFd, 1 << 20); r !== null; r = helpers.recv(hostFd!, 1 << 20)) {
        if (r.length === 0) {
          // The guest's end(): close our side, so the guest sees its peer go.
          closeSync(hostFd!);
          hostFd = null;
          hostClosed = true;
          break;
        }
        echoed.push(r.length);
        helpers.sendMessage(hostFd!, r);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const result = await guest;
    if (hostFd !== null) closeSync(hostFd);
    closeSync(listenFd);
    expect(result.stderr).toBe('');
    expect(echoed).toEqual([3, 20000, 5]);
    expect(result.stdout.trim()).toBe('3,20000,5');
  }, 120_000);

  it('refusals: guest -> host port nobody listens on gets ECONNRESET; host -> guest port with no listener is closed without OK', async () => {
    const guest = await vm.run('socat', ['-u', 'FILE:/dev/null', 'VSOCK-CONNECT:2:6999'], { timeoutMs: 60_000 });
    expect(guest.exitCode).not.toBe(0);
    expect(guest.stderr).toMatch(/Connection reset by peer/);
    const { socket, reply } = await hostConnect(5999);
    expect(reply).toBe('');
    socket.destroy();
    const stats = dev.stats();
    expect(stats.hostConnectFailed).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('a well-behaved guest causes no drops (refusals are not drops); the device outlives QEMU and serves the next VM', async () => {
    const stats = dev.stats();
    expect(totalDropped(stats), logs.join('\n')).toBe(0);
    expect(stats.queuesBroken).toBe(0);
    expect(stats.driverReady).toBe(true);
    const reset = new Promise<string>((resolve) => dev.once('reset', resolve));
    const gone = new Promise<string>((resolve) => dev.once('qemu-disconnected', resolve));
    await vm.stop();
    await reset;
    await gone;
    const after = dev.stats();
    expect(after).toMatchObject({ qemuAttached: false, driverReady: false, activeConnections: 0, mappedBytes: 0, memoryRegions: 0, bufferedBytes: 0 });

    vm = await bootGuest();
    await guestBackground('socat VSOCK-LISTEN:5000,reuseaddr,fork EXEC:cat');
    const { socket, reply, rest } = await hostConnectWhenListening(5000);
    expect(reply).toBe('OK 5000\n');
    socket.end('second VM\n');
    expect((await readAll(socket, rest)).toString()).toBe('second VM\n');
    expect(dev.stats().qemuConnections).toBe(2);
  }, 300_000);
});
