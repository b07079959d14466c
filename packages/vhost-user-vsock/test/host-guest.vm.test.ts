// Host <-> guest through the device, under a real QEMU TCG guest booted by testvm on our
// own device (`vsock: { device }`), so its stats and events stay readable: sizes both ways
// by SHA-256, half-close both ways, 1000 concurrent connections, refusals each side, a
// driver reset in the guest, then QEMU SIGKILLed mid-transfer and a second VM on the same
// device. Host side: Node sockets on the hybrid-vsock paths; guest side:
// guest/vsock-tool.mjs (node + @vmlink/vsock from the shared repo).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FdTable, fdsLeakedSince, fdsOpenedSince, openFds } from './helpers/fd-table.js';
import { startVm, type RunResult, type Vm } from '@vmlink/testvm';
import { createVsockDevice, totalDropped, type VsockDevice } from '../src/index.js';
import { closeServer, hostConnect, hostConnectWhenListening, hostListen, readAll, sha256 } from './helpers/hybrid-vsock.js';

const REPO = join(__dirname, '..', '..', '..');
const TOOL = join(__dirname, 'guest', 'vsock-tool.mjs');
const LIVENESS = 240_000;
const CONCURRENT = 1000;
const SIZES = [1, 64 * 1024, 64 * 1024 * 1024];

let dir: string;
let dev: VsockDevice;
let vm: Vm;
let fdsBeforeBoot: FdTable;
const logs: string[] = [];
const servers: Server[] = [];

const boot = (): Promise<Vm> => startVm({ share: REPO, memoryMiB: 1024, timeoutMs: LIVENESS, vsock: { device: dev } });

interface GuestTool {
  /** The command's result (it rejects when the VM goes away under it). */
  done: Promise<RunResult>;
  /** Resolves when the tool printed "listening" (listener modes) or "connected". */
  ready: Promise<void>;
}

/** Starts guest/vsock-tool.mjs in the guest; `ready` is its first output line, an event, not a guess. */
function guestTool(args: string[]): GuestTool {
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  let out = '';
  const done = vm.run('node', [TOOL, ...args], {
    timeoutMs: LIVENESS,
    onStdout: (chunk) => {
      out += chunk.toString();
      if (/^(listening|connected)$/m.test(out)) onReady();
    },
  });
  // A tool that dies before its first line must fail the test, not hang it.
  void done.then(
    (r) => {
      if (!/^(listening|connected)$/m.test(r.stdout)) onReady();
    },
    () => onReady(),
  );
  return { done, ready };
}

/** Writes until the socket fails or closes; resolves with the error code it failed with ('' = closed without error). */
function writeUntilItFails(socket: Socket): Promise<string> {
  const chunk = Buffer.alloc(64 * 1024, 0xa5);
  return new Promise((resolve) => {
    let code = '';
    socket.on('error', (err: NodeJS.ErrnoException) => (code ||= err.code ?? 'NO_CODE'));
    socket.once('close', () => resolve(code));
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk));
      if (!socket.destroyed) socket.once('drain', pump);
    };
    pump();
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmlink-vuv-hg-'));
  dev = await createVsockDevice({ socket: join(dir, 'vhost.sock'), udsPath: join(dir, 'v.sock'), guestCid: 3 });
  dev.on('log', (line) => logs.push(line));
  fdsBeforeBoot = openFds(); // the device's own listeners are in it: they stay
  vm = await boot();
}, LIVENESS);

afterAll(async () => {
  for (const server of servers) server.close();
  await vm?.stop();
  await dev?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('host <-> guest through the vhost-user vsock device', () => {
  it('host -> guest: 1 B, 64 KiB and 64 MiB, each checked by SHA-256 in the guest', async () => {
    const guest = guestTool(['sink', '5100', String(SIZES.length)]);
    await guest.ready;
    for (const size of SIZES) {
      const payload = randomBytes(size);
      const { socket, reply, rest } = await hostConnect(dev.udsPath, 5100);
      expect(reply).toBe('OK 5100\n');
      socket.end(payload); // EOF tells the guest the payload is complete
      const answer = (await readAll(socket, rest)).toString();
      expect(answer).toBe(`${size} ${sha256(payload)}\n`);
      socket.destroy();
    }
    expect((await guest.done).exitCode).toBe(0);
  }, LIVENESS);

  it('guest -> host: 1 B, 64 KiB and 64 MiB to ${udsPath}_6100, each checked by SHA-256 on the host', async () => {
    const hostDigests: string[] = [];
    servers.push(
      await hostListen(dev.udsPath, 6100, (socket) => {
        const hash = createHash('sha256');
        let length = 0;
        socket.on('data', (c: Buffer) => {
          length += c.length;
          hash.update(c);
        });
        socket.once('end', () => {
          const line = `${length} ${hash.digest('hex')}`;
          hostDigests.push(line);
          socket.end(`${line}\n`);
        });
      }, { allowHalfOpen: true }),
    );
    const before = dev.stats();
    const guest = await vm.run('node', [TOOL, 'source', '6100', ...SIZES.map(String)], { timeoutMs: LIVENESS });
    expect(guest.exitCode, guest.stderr).toBe(0);
    // Per-packet costs (counts, not timing): one host write per device pass over the tx ring
    // (plus the retries of writes a full host socket refused), never one per packet; one
    // CREDIT_UPDATE per creditUpdateBytes (128 KiB by default) forwarded, not per packet.
    const after = dev.stats();
    const delta = (pick: (s: typeof after) => number): number => pick(after) - pick(before);
    const bytes = delta((s) => s.bytesFromGuest);
    expect(bytes).toBe(SIZES.reduce((a, b) => a + b, 0));
    expect(delta((s) => s.hostWrites)).toBeLessThanOrEqual(delta((s) => s.txPasses) + 3 * delta((s) => s.hostWritesBlocked) + 3);
    expect(delta((s) => s.hostWrites)).toBeLessThan(delta((s) => s.packetsFromGuest));
    expect(delta((s) => s.creditUpdatesSent)).toBeLessThanOrEqual(Math.ceil(bytes / (128 * 1024)) + SIZES.length);
    const lines = guest.stdout.trim().split('\n');
    expect(lines).toHaveLength(SIZES.length);
    lines.forEach((line, i) => {
      const [size, guestDigest, hostLength, hostDigest] = line.split(' ');
      expect(Number(size)).toBe(SIZES[i]);
      expect(Number(hostLength)).toBe(SIZES[i]);
      expect(hostDigest).toBe(guestDigest);
      expect(hostDigests[i]).toBe(`${SIZES[i]} ${guestDigest}`);
    });
  }, LIVENESS);

  it('half-close host -> guest: after the host end()s, the guest reads EOF and still sends', async () => {
    const guest = guestTool(['halfclose-listen', '5200']);
    await guest.ready;
    const { socket, reply, rest } = await hostConnect(dev.udsPath, 5200);
    expect(reply).toBe('OK 5200\n');
    socket.end('hello from the host');
    expect((await readAll(socket, rest)).toString()).toBe('guest read hello from the host');
    socket.destroy();
    expect((await guest.done).exitCode).toBe(0);
  }, LIVENESS);

  it("half-close guest -> host: after the guest's shutdown(SHUT_WR), the host sees 'end' and still sends", async () => {
    let hostReadDone!: (text: string) => void;
    let hostReadFailed!: (err: Error) => void;
    const hostRead = new Promise<string>((resolve, reject) => ((hostReadDone = resolve), (hostReadFailed = reject)));
    // Listening before the guest connects (awaited, not guessed).
    servers.push(
      await hostListen(dev.udsPath, 6200, (socket) => {
        const got: Buffer[] = [];
        socket.on('data', (c: Buffer) => got.push(c));
        socket.once('error', hostReadFailed);
        socket.once('end', () => {
          const text = Buffer.concat(got).toString();
          socket.end(`host read ${text}`); // written after the guest's EOF
          hostReadDone(text);
        });
      }, { allowHalfOpen: true }),
    );
    const guest = await vm.run('node', [TOOL, 'halfclose-connect', '6200'], { timeoutMs: LIVENESS });
    expect(guest.exitCode, guest.stderr).toBe(0);
    expect(await hostRead).toBe('hello from the guest');
    expect(guest.stdout.trim()).toBe('host read hello from the guest');
  }, LIVENESS);

  it(`${CONCURRENT} concurrent host -> guest connections, all open at once, each echoes its own payload`, async () => {
    // maxConnections defaults to 4096 (open + handshaking), so 1000 needs no option.
    const guest = guestTool(['echo', '5300', String(CONCURRENT)]);
    await guest.ready;
    const open: { socket: Socket; rest: Buffer }[] = [];
    // At most 64 handshakes in flight: the device's listener has a backlog of 128, and a
    // Unix connect() beyond a full backlog fails with EAGAIN instead of waiting.
    let next = 0;
    const opener = async (): Promise<void> => {
      while (next < CONCURRENT) {
        next += 1;
        const { socket, reply, rest } = await hostConnect(dev.udsPath, 5300);
        expect(reply).toBe('OK 5300\n');
        open.push({ socket, rest });
      }
    };
    await Promise.all(Array.from({ length: 64 }, opener));
    expect(open).toHaveLength(CONCURRENT);
    expect(dev.stats().activeConnections).toBeGreaterThanOrEqual(CONCURRENT); // earlier connections may still be closing
    const echoes = open.map(({ socket, rest }, i) => {
      const payload = `connection ${i} ${randomBytes(8).toString('hex')}`;
      const echoed = readAll(socket, rest);
      socket.end(payload);
      return echoed.then((b) => [b.toString(), payload]);
    });
    for (const [echoed, payload] of await Promise.all(echoes)) expect(echoed).toBe(payload);
    for (const { socket } of open) socket.destroy();
    const result = await guest.done;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
  }, LIVENESS);

  it('refused both ways: host CONNECT to a port nobody listens on is closed without OK; the guest gets ECONNRESET', async () => {
    const refusedBefore = dev.stats().hostConnectFailed;
    const { socket, reply } = await hostConnect(dev.udsPath, 5999);
    expect(reply).toBe('');
    socket.destroy();
    const guest = await vm.run('node', [TOOL, 'connect', '6999'], { timeoutMs: LIVENESS });
    expect(guest.stdout.trim()).toBe('ECONNRESET');
    expect(dev.stats().hostConnectFailed).toBe(refusedBefore + 1);
  }, LIVENESS);

  it('driver reset in the guest (virtio unbind + bind of vmw_vsock_virtio_transport): open host connections close, the device serves the new driver', async () => {
    // testvm runs QEMU with -no-reboot (a guest reboot ends QEMU, covered below), so the
    // reset is the driver's own: unbinding it resets the virtio device (status 0), QEMU
    // stops the rings (GET_VRING_BASE), binding it again sets them up anew.
    const driver = '/sys/bus/virtio/drivers/vmw_vsock_virtio_transport';
    const listener = guestTool(['echo', '5400', '2']);
    await listener.ready;
    const before = await hostConnect(dev.udsPath, 5400);
    expect(before.reply).toBe('OK 5400\n');
    const hostSide = readAll(before.socket, before.rest).then((b) => b.toString(), (err: NodeJS.ErrnoException) => err.code ?? 'NO_CODE');
    const resetsBefore = dev.stats();
    const reset = new Promise<string>((resolve) => dev.once('reset', resolve));
    const unbind = await vm.run('sh', ['-c', `d=$(ls ${driver} | grep '^virtio'); echo $d > ${driver}/unbind && echo $d`], { timeoutMs: LIVENESS });
    expect(unbind.exitCode, unbind.stderr).toBe(0);
    const virtioDevice = unbind.stdout.trim();
    expect(virtioDevice).toMatch(/^virtio\d+$/);
    expect(typeof (await reset)).toBe('string');
    expect(await hostSide).toBe(''); // closed by the device, nothing echoed
    before.socket.destroy();
    expect(dev.stats()).toMatchObject({ qemuAttached: true, driverReady: false, activeConnections: 0, driverResets: resetsBefore.driverResets + 1 });
    const refused = await hostConnect(dev.udsPath, 5400); // no driver: refused, not hung
    expect(refused.reply).toBe('');
    refused.socket.destroy();

    const ready = new Promise<void>((resolve) => dev.once('driver-ready', resolve));
    const bind = await vm.run('sh', ['-c', `echo ${virtioDevice} > ${driver}/bind`], { timeoutMs: LIVENESS });
    expect(bind.exitCode, bind.stderr).toBe(0);
    await ready;
    expect(dev.stats()).toMatchObject({ driverReady: true, driverStarts: resetsBefore.driverStarts + 1, qemuConnections: 1 });
    // The guest's listener outlived the reset and answers through the new driver.
    const after = await hostConnectWhenListening(dev.udsPath, 5400);
    expect(after.reply).toBe('OK 5400\n');
    after.socket.end('after the reset');
    expect((await readAll(after.socket, after.rest)).toString()).toBe('after the reset');
    after.socket.destroy();
    expect((await listener.done).exitCode).toBe(0);
  }, LIVENESS);

  it('a well-behaved guest caused no drops', () => {
    expect(totalDropped(dev.stats()), logs.join('\n')).toBe(0);
    expect(dev.stats().queuesBroken).toBe(0);
  });

  it('QEMU SIGKILLed mid-transfer: host sockets fail with a code, the device survives and serves the next VM, no fd leaked', async () => {
    const start = dev.stats();
    // Host -> guest: the host writes into a guest sink that never sees EOF.
    const sink = guestTool(['sink', '5500', '1']);
    await sink.ready;
    const toGuest = await hostConnect(dev.udsPath, 5500);
    expect(toGuest.reply).toBe('OK 5500\n');
    const toGuestFailed = writeUntilItFails(toGuest.socket);
    // Guest -> host: the guest floods a host listener, which floods back.
    let fromGuestSocket: Socket | undefined;
    let fromGuestAccepted!: (failed: Promise<string>) => void;
    const fromGuestFailed = new Promise<string>((resolve) => (fromGuestAccepted = resolve));
    servers.push(
      await hostListen(dev.udsPath, 6500, (socket) => {
        fromGuestSocket = socket;
        socket.resume();
        fromGuestAccepted(writeUntilItFails(socket));
      }, { allowHalfOpen: true }),
    );
    const flood = guestTool(['flood', '6500']);
    await flood.ready;
    // Mid-transfer: bytes are moving both ways (the counters have no event: poll them).
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const s = dev.stats();
        if (s.bytesToGuest - start.bytesToGuest >= 4 << 20 && s.bytesFromGuest - start.bytesFromGuest >= 4 << 20) resolve();
        else setTimeout(check, 50);
      };
      check();
    });
    // Both guest commands die with the VM: their rejections are expected.
    const runsGone = Promise.allSettled([sink.done, flood.done]);
    const reset = new Promise<string>((resolve) => dev.once('reset', resolve));
    const disconnected = new Promise<string>((resolve) => dev.once('qemu-disconnected', resolve));
    process.kill(vm.pid, 'SIGKILL');
    await disconnected;
    await reset;
    expect(['EPIPE', 'ECONNRESET']).toContain(await toGuestFailed);
    expect(['EPIPE', 'ECONNRESET']).toContain(await fromGuestFailed);
    expect(fromGuestSocket?.destroyed).toBe(true);
    for (const outcome of await runsGone) expect(outcome.status).toBe('rejected');
    await vm.stop();
    // The device is alive in this process, its counters readable, nothing of the old VM kept.
    expect(dev.closed).toBe(false);
    expect(dev.stats()).toMatchObject({ qemuAttached: false, driverReady: false, activeConnections: 0, pendingHandshakes: 0, bufferedBytes: 0, mappedBytes: 0, memoryRegions: 0 });
    for (const server of servers.splice(0)) await closeServer(server);
    // Every fd of the killed VM, its connections and this file's sockets is closed again.
    // Not warmed up (that would take a boot): fds of the kinds Node opens lazily (Node 26's
    // libuv: a timerfd) are left to the exact check below and to harness.test.ts.
    expect(fdsLeakedSince(fdsBeforeBoot)).toEqual([]);
    const fdsAfterFirstVm = openFds(); // warm by now: the next VM's cycle is compared exactly

    // The next VM on the same device moves bytes both ways.
    vm = await boot();
    expect(dev.stats().qemuConnections).toBe(2);
    const guest = guestTool(['sink', '5100', '1']);
    await guest.ready;
    const payload = randomBytes(1 << 20);
    const { socket, reply, rest } = await hostConnect(dev.udsPath, 5100);
    expect(reply).toBe('OK 5100\n');
    socket.end(payload);
    expect((await readAll(socket, rest)).toString()).toBe(`${payload.length} ${sha256(payload)}\n`);
    socket.destroy();
    expect((await guest.done).exitCode).toBe(0);
    await vm.stop();
    await new Promise<void>((resolve) => dev.stats().qemuAttached ? dev.once('qemu-disconnected', () => resolve()) : resolve());
    // And of the second VM, every kind of fd (eventfds and timers included).
    expect(fdsOpenedSince(fdsAfterFirstVm)).toEqual([]);
    expect(fdsLeakedSince(fdsBeforeBoot)).toEqual([]);
  }, 2 * LIVENESS);
});
