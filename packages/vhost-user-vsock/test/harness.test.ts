// The device driven by GuestDriverHarness (a test double of QEMU + the guest driver over
// a memfd and a socketpair; see harness/driver-harness.ts) with real host Unix sockets.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EVENT, GuestDriverHarness, type GuestSocket, RX, TX } from './harness/driver-harness.js';
import { FLAG_NEED_REPLY, FLAG_REPLY, FLAG_VERSION, memReg, PF_CONFIG, PF_MEM_SLOTS, PF_REPLY_ACK, Req, u64, vringState } from './harness/vhost-user-messages.js';
import { Op, SHUTDOWN_SEND, TYPE_STREAM } from './harness/vsock-header.js';
import { fdsClosedSince, fdsOpenedSince, openFds } from './helpers/fd-table.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-vuv-h-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let counter = 0;
const open: GuestDriverHarness[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  for (const h of open.splice(0)) await h.close();
});

async function harness(
  options: {
    bufAlloc?: number;
    maxConnections?: number;
    creditUpdateBytes?: number;
    txNotifyBatch?: number;
    txNotifyDelayUs?: number;
    rxBuffersPerRead?: number;
    txKickDeferUs?: number;
    txKickBatch?: number;
    txStreamBytes?: number;
    txPacketsPerTurn?: number;
    txKicksByEventIdx?: boolean;
  } = {},
): Promise<GuestDriverHarness> {
  const h = await GuestDriverHarness.create({ dir, name: `d${counter++}`, guestCid: 3, ...options });
  open.push(h);
  return h;
}

async function listenHost(path: string, onConnection: (s: Socket) => void): Promise<Server> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  servers.push(server);
  return server;
}

describe('vhost-user setup (harness plays QEMU)', () => {
  it('negotiates, maps the memory table, gives the CID through GET_CONFIG and reports driver-ready', async () => {
    const h = await harness();
    const ready = new Promise<void>((resolve) => h.device.once('driver-ready', resolve));
    h.setup();
    await ready;
    expect(h.getConfigCid()).toBe(3n);
    expect(h.device.stats()).toMatchObject({ driverReady: true, memoryRegions: 1, mappedBytes: 0x200000, vhostUserErrors: 0 });
  });

  it('stopping the rings (GET_VRING_BASE) resets: host connections are closed, and a new driver gets going again', async () => {
    const h = await harness();
    h.setup();
    let hostSide: Socket | undefined;
    await listenHost(`${h.device.udsPath}_7000`, (s) => (hostSide = s));
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected' && hostSide !== undefined, 'connect');
    const closed = new Promise<void>((resolve) => hostSide!.once('close', () => resolve()).resume());
    const reset = new Promise<string>((resolve) => h.device.once('reset', resolve));
    h.restartRings();
    expect(await reset).toMatch(/rings stopped/);
    await closed;
    expect(h.device.stats()).toMatchObject({ activeConnections: 0, driverReady: true, driverStarts: 2 });
  });

  it('QEMU gone mid-transfer: host sockets are closed, the device unmaps, keeps no fd of that QEMU, and stays up', async () => {
    // Run twice: the first run warms the runtime (Node opens some fds lazily, e.g. Node
    // 26's libuv a timerfd), so the second one's fd table is exact (helpers/fd-table.ts).
    for (const warmUp of [true, false]) {
      const h = await harness();
      h.setup();
      let hostSide: Socket | undefined;
      await listenHost(`${h.device.udsPath}_7000`, (s) => (hostSide = s));
      const fdsBefore = openFds();
      const sock = h.connect(7000);
      await h.until(() => sock.state === 'connected' && hostSide !== undefined, 'connect');
      h.write(sock, randomBytes(64 * 1024));
      await h.until(() => h.device.stats().bytesFromGuest > 0, 'some bytes moving');
      const hostClosed = new Promise<void>((resolve) => hostSide!.once('close', () => resolve()).resume());
      const gone = new Promise<string>((resolve) => h.device.once('qemu-disconnected', resolve));
      h.disconnectQemu();
      expect(await gone).toMatch(/closed/);
      await hostClosed;
      expect(h.device.stats()).toMatchObject({ qemuAttached: false, driverReady: false, activeConnections: 0, mappedBytes: 0, bufferedBytes: 0 });
      if (warmUp) continue;
      // Gone since before the transfer: both ends of the vhost-user socket and the 6 ring
      // eventfds (kick + call x 3) the device was handed; and nothing made during it (the
      // host connection, the tx interrupt timer) is left.
      expect(fdsOpenedSince(fdsBefore)).toEqual([]);
      const closed = fdsClosedSince(fdsBefore);
      expect(closed).toHaveLength(8);
      expect(closed.filter((e) => e.endsWith('anon_inode:[eventfd]'))).toHaveLength(6);
    }
    // (Serving the next QEMU on the listening socket is proven with real QEMUs in qemu.vm.test.ts.)
  });

  it('REPLY_ACK: a request with NEED_REPLY gets 0 when done and non-zero when refused (bad ring size, bad ring index)', async () => {
    const h = await harness();
    h.setup();
    h.request(Req.SET_PROTOCOL_FEATURES, u64(PF_REPLY_ACK | PF_CONFIG | PF_MEM_SLOTS));
    const ack = (request: number, payload: Buffer): bigint => {
      const replies = h.request(request, payload, [], FLAG_VERSION | FLAG_NEED_REPLY);
      expect(replies).toHaveLength(1);
      expect(replies[0]!.flags & FLAG_REPLY).toBe(FLAG_REPLY);
      return replies[0]!.payload.readBigUInt64LE(0);
    };
    expect(ack(Req.SET_OWNER, Buffer.alloc(0))).toBe(0n);
    expect(ack(Req.SET_VRING_NUM, vringState(0, 3))).not.toBe(0n); // not a power of two
    expect(ack(Req.SET_VRING_NUM, vringState(7, 128))).not.toBe(0n); // no queue 7
    expect(ack(99, Buffer.alloc(8))).not.toBe(0n); // unknown request
    expect(h.device.stats().vhostUserErrors).toBe(3);
  });

  it('REM_MEM_REG unmaps (rings stop), SET_MEM_TABLE maps again, and traffic resumes', async () => {
    const h = await harness();
    h.setup();
    const removed = h.request(Req.REM_MEM_REG, memReg(h.region()), [h.memfdFd], FLAG_VERSION);
    expect(removed).toEqual([]);
    expect(h.device.stats()).toMatchObject({ memoryRegions: 0, mappedBytes: 0 });
    const table = Buffer.alloc(8 + 32);
    table.writeUInt32LE(1, 0);
    memReg(h.region()).copy(table, 8, 8);
    h.request(Req.SET_MEM_TABLE, table, [h.memfdFd]);
    expect(h.device.stats()).toMatchObject({ memoryRegions: 1, mappedBytes: 0x200000, vhostUserErrors: 0 });
    h.restartRings();
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.pipe(s));
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    h.write(sock, Buffer.from('mapped again'));
    await h.until(() => Buffer.concat(sock.received).toString() === 'mapped again', 'echo');
  });

  it('TRANSPORT_RESET: each new driver gets one on the event ring once it posts a buffer', async () => {
    const h = await harness();
    h.setup();
    h.postEventBuffer();
    await h.until(() => h.usedIdx(EVENT) === 1, 'the event');
    expect(h.usedEntry(EVENT, 0)).toEqual({ id: 0, len: 4 });
    expect(h.lastEventId()).toBe(0); // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
    h.postEventBuffer(); // the same driver: no second reset
    for (let i = 0; i < 5; i++) h.pump();
    expect(h.usedIdx(EVENT)).toBe(1);
    h.restartRings(); // a new driver
    h.postEventBuffer();
    await h.until(() => h.usedIdx(EVENT) === 1, 'the new driver\'s event');
    expect(h.lastEventId()).toBe(0);
    expect(h.device.stats().transportResetsSent).toBe(2);
  });

  it('as under QEMU (only rx and tx handed over): the driver is served, no TRANSPORT_RESET can be sent', async () => {
    const h = await harness();
    const ready = new Promise<void>((resolve) => h.device.once('driver-ready', resolve));
    h.setup([RX, TX]);
    await ready;
    let hostSide: Socket | undefined;
    await listenHost(`${h.device.udsPath}_7000`, (s) => (hostSide = s));
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected' && hostSide !== undefined, 'connect');
    expect(h.device.stats()).toMatchObject({ driverReady: true, transportResetsSent: 0 });
  });

  it('close() is idempotent and leaves no fd behind', async () => {
    const warmUp = await GuestDriverHarness.create({ dir, name: `fd${counter++}`, guestCid: 3 });
    warmUp.setup();
    await warmUp.close(); // the runtime's lazily opened fds are open now (helpers/fd-table.ts)
    const before = openFds();
    const h = await GuestDriverHarness.create({ dir, name: `fd${counter++}`, guestCid: 3 });
    h.setup();
    await h.close();
    await h.close();
    expect(fdsOpenedSince(before)).toEqual([]);
    expect(() => h.device.stats()).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_VSOCKD_CLOSED' }));
  });
});

describe('streams through the device (harness plays the guest driver)', () => {
  it('guest -> host: 1 MiB each way through a host echo, with credit, half-close both ways', async () => {
    const h = await harness();
    h.setup();
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.pipe(s));
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'RESPONSE');
    const data = randomBytes(1024 * 1024);
    h.write(sock, data);
    h.shutdown(sock, SHUTDOWN_SEND);
    await h.until(() => (sock.peerShutdown & SHUTDOWN_SEND) !== 0, 'the echo and its EOF');
    expect(sha(Buffer.concat(sock.received))).toBe(sha(data));
    h.closeSocket(sock);
    await h.until(() => sock.state === 'reset', 'RST after close');
    expect(h.device.stats()).toMatchObject({ activeConnections: 0, bufferedBytes: 0 });
  });

  it('host -> guest: CONNECT <port> gets OK <port>, bytes written right behind the line arrive, EOF arrives as SHUTDOWN', async () => {
    const h = await harness();
    h.setup();
    h.listen(5000);
    const client = connect(h.device.udsPath);
    client.write('connect   5000\r\nhello ');
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    await h.until(() => reply === 'OK 5000\n', 'OK line');
    client.end('world');
    const sock = [...h.sockets.values()][0]!;
    await h.until(() => (sock.peerShutdown & SHUTDOWN_SEND) !== 0, 'EOF from the host');
    expect(Buffer.concat(sock.received).toString()).toBe('hello world');
    h.write(sock, Buffer.from('back'));
    h.shutdown(sock);
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    await h.until(() => reply === 'OK 5000\nback', 'guest bytes on the host');
    await ended;
  });

  it('host -> guest refused: no listener (guest RST), bad line, and before the driver is ready: closed without OK', async () => {
    const h = await harness();
    const attempt = (line: string): Promise<string> =>
      new Promise((resolve) => {
        const c = connect(h.device.udsPath);
        let got = '';
        c.on('data', (d: Buffer) => (got += d.toString()));
        c.on('error', () => {});
        c.on('close', () => resolve(got));
        c.write(line);
      });
    expect(await attempt('CONNECT 5000\n')).toBe('');
    expect(h.device.stats().refusedNotReady).toBe(1);
    h.setup();
    const noListener = attempt('CONNECT 5001\n');
    await h.until(() => h.device.stats().connectionsClosed >= 1, 'guest RST');
    expect(await noListener).toBe('');
    for (const bad of ['CONNECT\n', 'CONNECT 99999999999\n', 'HELLO 5\n', 'CONNECT 5 6\n', 'x'.repeat(100)]) expect(await attempt(bad)).toBe('');
    expect(h.device.stats().connectLinesBad).toBe(5);
  });

  it('guest -> host refused: nobody listens on ${udsPath}_P -> RST', async () => {
    const h = await harness();
    h.setup();
    const sock = h.connect(7999);
    await h.until(() => sock.state === 'reset', 'RST');
    expect(h.device.stats().hostConnectFailed).toBe(1);
  });

  it('a host that never reads: the device buffers at most bufAlloc, the guest runs out of credit, nothing is lost', async () => {
    const bufAlloc = 64 * 1024;
    const h = await harness({ bufAlloc });
    h.setup();
    let host: Socket | undefined;
    await listenHost(`${h.device.udsPath}_7000`, (s) => {
      host = s;
      s.pause();
    });
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected' && host !== undefined, 'connect');
    const data = randomBytes(8 * 1024 * 1024);
    h.write(sock, data);
    // Pump until the guest is stuck on credit.
    await h.until(() => sock.peerBufAlloc - ((sock.txCnt - sock.peerFwdCnt) >>> 0) <= 0, 'credit exhausted');
    const stuck = h.device.stats();
    expect(stuck.bufferedBytes).toBeLessThanOrEqual(bufAlloc);
    expect(sock.txCnt).toBeLessThan(data.length);
    const chunks: Buffer[] = [];
    host!.on('data', (c: Buffer) => chunks.push(c));
    host!.resume();
    await h.until(() => chunks.reduce((n, c) => n + c.length, 0) === data.length, 'all bytes at the host');
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
  });

  it('a guest that ignores the credit: the packet over it is dropped, counted, and the connection reset', async () => {
    const bufAlloc = 16 * 1024;
    const h = await harness({ bufAlloc });
    h.setup();
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.pause());
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    sock.peerBufAlloc = 1 << 30; // lie to ourselves: ignore the device's buf_alloc
    h.write(sock, randomBytes(256 * 1024));
    await h.until(() => sock.state === 'reset', 'RST for the violation');
    const stats = h.device.stats();
    expect(stats.dropped.creditViolation).toBe(1);
    expect(stats.bufferedBytes).toBe(0);
  });

  it('wrong src_cid and a REQUEST to another CID are dropped and counted', async () => {
    const h = await harness();
    h.setup();
    const base = { dstCid: 2n, srcPort: 1, dstPort: 7000, len: 0, type: TYPE_STREAM, op: Op.REQUEST, flags: 0, bufAlloc: 4096, fwdCnt: 0 };
    h.sendPacket({ ...base, srcCid: 4n });
    h.sendPacket({ ...base, srcCid: 3n, dstCid: 5n });
    await h.until(() => h.device.stats().packetsFromGuest >= 2, 'both packets');
    expect(h.device.stats().dropped).toMatchObject({ badSrcCid: 1, badDstCid: 1 });
  });
});

describe('txKickDeferUs: the guest\'s credit update after a read rides along with its reply', () => {
  /** A host -> guest connection on a harness whose driver kicks tx only when avail_event asks. */
  async function pingSetup(txKickDeferUs: number): Promise<{ h: GuestDriverHarness; client: Socket; sock: GuestSocket; fromGuest: () => string }> {
    const h = await harness({ txKickDeferUs, txKicksByEventIdx: true });
    h.setup();
    h.listen(5000);
    const client = connect(h.device.udsPath);
    client.write('CONNECT 5000\n');
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    await h.until(() => reply.startsWith('OK 5000\n'), 'OK line');
    const sock = [...h.sockets.values()][0]!;
    return { h, client, sock, fromGuest: () => reply.slice('OK 5000\n'.length) };
  }

  /** One round trip as a Linux guest does it: read, CREDIT_UPDATE (drained), then the reply. */
  async function roundTrip(t: Awaited<ReturnType<typeof pingSetup>>, n: number): Promise<number> {
    const kicks = t.h.device.stats().kicksByQueue.tx;
    const got = t.sock.receivedBytes;
    t.client.write(Buffer.from([n]));
    await t.h.untilFromLoop(() => t.sock.receivedBytes === got + 1, 'the ping in the guest');
    const updates = t.h.device.stats().packetsFromGuestByOp.creditUpdate;
    const suppressed = t.h.txKicksSuppressed;
    t.h.sendCreditUpdate(t.sock);
    // As in a guest, the reply comes later (the application's turn): a kicked device runs first.
    if (t.h.txKicksSuppressed === suppressed) {
      await t.h.untilFromLoop(() => t.h.device.stats().packetsFromGuestByOp.creditUpdate === updates + 1, 'the credit update taken');
    }
    t.h.write(t.sock, Buffer.from([n]));
    await t.h.untilFromLoop(() => t.fromGuest().length === n + 1, 'the pong on the host');
    return t.h.device.stats().kicksByQueue.tx - kicks;
  }

  it('on: one tx kick per round trip (the update is taken with the reply); off: two', async () => {
    const on = await pingSetup(10_000_000); // a timer this far off never fires during the test
    const kicksOn: number[] = [];
    for (let i = 0; i < 5; i++) kicksOn.push(await roundTrip(on, i));
    expect(kicksOn).toEqual([1, 1, 1, 1, 1]);
    expect(on.h.device.stats().packetsFromGuestByOp).toMatchObject({ creditUpdate: 5, rw: 5 });
    on.client.destroy();

    const off = await pingSetup(0);
    const kicksOff: number[] = [];
    for (let i = 0; i < 5; i++) kicksOff.push(await roundTrip(off, i));
    expect(kicksOff).toEqual([2, 2, 2, 2, 2]);
    off.client.destroy();
  });

  it('a lone packet after host data (no kick asked for) is taken by the timer', async () => {
    const t = await pingSetup(20_000);
    const got = t.sock.receivedBytes;
    t.client.write('x');
    await t.h.untilFromLoop(() => t.sock.receivedBytes === got + 1, 'the byte in the guest');
    const suppressed = t.h.txKicksSuppressed;
    t.h.write(t.sock, Buffer.from('alone')); // no credit update first: the only packet
    expect(t.h.txKicksSuppressed).toBe(suppressed + 1);
    await t.h.untilFromLoop(() => t.fromGuest() === 'alone', 'the lone packet on the host, by the timer');
    // Taken and the ring asks for kicks again: the next packet kicks.
    expect(t.h.availEvent(TX)).toBe(t.h.availIndex(TX));
    t.client.destroy();
  });

  it('not while the guest\'s credit runs low: its updates are what the device waits for', async () => {
    const t = await pingSetup(10_000_000);
    t.h.holdReceived = true; // the guest's application does not read
    t.client.write('x');
    await t.h.untilFromLoop(() => t.h.device.stats().bytesToGuest === 1, 'a byte in the guest');
    expect(t.h.availEvent(TX)).toBe((t.h.availIndex(TX) + 1) & 0xffff); // deferred: the next packet comes silently
    // Then more than half the guest's buffer in flight.
    t.client.write(Buffer.alloc(t.h.guestBufAlloc / 2 + 4096));
    await t.h.untilFromLoop(() => t.h.device.stats().bytesToGuest === 1 + t.h.guestBufAlloc / 2 + 4096, 'the data in the guest');
    expect(t.h.availEvent(TX)).toBe(t.h.availIndex(TX)); // the next packet (an update) kicks
    t.client.destroy();
  });
});

describe('txKickBatch: a guest streaming to the host kicks, and is written out, once per batch', () => {
  const PACKET = 4096;

  /**
   * A guest -> host connection whose guest queues one 4 KiB packet per loop turn (a TCG
   * guest's pace) and kicks only when avail_event asks (EVENT_IDX, as Linux does); the device
   * runs only from its own watchers. `send` streams bytes and resolves when the host has them.
   */
  async function streamer(options: { txKickBatch: number; bufAlloc?: number; creditUpdateBytes?: number }) {
    const h = await harness({ ...options, txKicksByEventIdx: true, txPacketsPerTurn: 1, txKickDeferUs: 200_000, txStreamBytes: 64 * 1024 });
    h.setup();
    const atHost = createHash('sha256');
    const sent = createHash('sha256');
    let hostBytes = 0;
    let hostSocket: (s: Socket) => void = () => {};
    const hostSocketReady = new Promise<Socket>((resolve) => (hostSocket = resolve));
    await listenHost(`${h.device.udsPath}_7000`, (s) => {
      hostSocket(s);
      s.on('data', (c: Buffer) => {
        atHost.update(c);
        hostBytes += c.length;
      });
    });
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    /** Largest stretch of packets the device let arrive without a kick (avail_event past the ring's used index). */
    let maxSilent = 0;
    const send = async (bytes: number, packet = PACKET): Promise<void> => {
      const target = hostBytes + bytes;
      for (let off = 0; off < bytes; off += packet) {
        const chunk = randomBytes(Math.min(packet, bytes - off));
        sent.update(chunk);
        sock.toSend.push(chunk);
      }
      await h.untilFromLoop(() => {
        maxSilent = Math.max(maxSilent, (h.availEvent(TX) - h.usedIdx(TX)) & 0xffff);
        return hostBytes === target;
      }, `${target} bytes at the host`);
    };
    return {
      h,
      send,
      hostSocket: () => hostSocketReady,
      maxSilent: () => maxSilent,
      digests: () => [sent.copy().digest('hex'), atHost.copy().digest('hex')],
    };
  }

  /** Per MiB of a 2 MiB stream (after 512 KiB to get it going): tx kicks, device passes, host writes. */
  async function perMiB(txKickBatch: number): Promise<{ kicks: number; passes: number; writes: number; bytesPerWrite: number; t: Awaited<ReturnType<typeof streamer>> }> {
    const t = await streamer({ txKickBatch });
    await t.send(512 * 1024);
    const before = t.h.device.stats();
    await t.send(2 * 1024 * 1024);
    const after = t.h.device.stats();
    const [sent, atHost] = t.digests();
    expect(atHost).toBe(sent); // whole and in order
    return {
      kicks: (after.kicksByQueue.tx - before.kicksByQueue.tx) / 2,
      passes: (after.txPasses - before.txPasses) / 2,
      writes: (after.hostWrites - before.hostWrites) / 2,
      bytesPerWrite: (after.hostWriteBytes - before.hostWriteBytes) / (after.hostWrites - before.hostWrites),
      t,
    };
  }

  it('on (16): at most 20 tx kicks, device passes and host writes per MiB of 4 KiB packets; off (1): one of each per packet', async () => {
    const on = await perMiB(16);
    expect(on.kicks).toBeLessThanOrEqual(20);
    expect(on.passes).toBeLessThanOrEqual(20);
    expect(on.writes).toBeLessThanOrEqual(20);
    expect(on.bytesPerWrite).toBeGreaterThanOrEqual(48 * 1024);
    expect(on.t.h.device.stats().txStreamDeferrals).toBeGreaterThan(0);
    expect(on.t.maxSilent()).toBe(15); // the kick comes with the 16th packet
    expect(on.t.h.device.stats().dropped).toMatchObject({ creditViolation: 0, badChain: 0 });

    const off = await perMiB(1);
    // 256 packets per MiB, each its own kick, wake-up and write (a few may pair up under load).
    expect(off.kicks).toBeGreaterThanOrEqual(200);
    expect(off.writes).toBeGreaterThanOrEqual(200);
    expect(off.t.h.device.stats().txStreamDeferrals).toBe(0);
    expect(off.t.maxSilent()).toBe(0);
  });

  it('host data to the guest ends the stream (request/response): the packets after it kick one by one, none waits for the timer', async () => {
    const t = await streamer({ txKickBatch: 16 });
    await t.send(256 * 1024 + 4 * PACKET); // streaming now
    expect(t.h.device.stats().txStreamDeferrals).toBeGreaterThan(0);
    const sock = [...t.h.sockets.values()][0]!;
    const hostEnd = await t.hostSocket();
    const got = sock.receivedBytes;
    hostEnd.write('?');
    await t.h.untilFromLoop(() => sock.receivedBytes === got + 1, 'the request in the guest');
    t.h.sendCreditUpdate(sock); // as Linux does on draining its socket; rides along with the next packet
    const before = t.h.device.stats();
    for (let i = 0; i < 8; i++) await t.send(PACKET);
    const after = t.h.device.stats();
    expect(after.kicksByQueue.tx - before.kicksByQueue.tx).toBe(8);
    expect(after.txTimerPasses - before.txTimerPasses).toBe(0);
    expect(after.txStreamDeferrals - before.txStreamDeferrals).toBe(0);
  });

  it('a stream that goes quiet for txKickDeferUs stops counting as one: later packets kick one by one', async () => {
    const t = await streamer({ txKickBatch: 16 });
    const timerPasses = t.h.device.stats().txTimerPasses;
    await t.send(256 * 1024 + 4 * PACKET); // its tail is found by the timer
    // The next timer pass finds nothing from it: quiet.
    await t.h.untilFromLoop(() => t.h.device.stats().txTimerPasses >= timerPasses + 2, 'a timer pass with nothing from the stream');
    const before = t.h.device.stats();
    for (let i = 0; i < 8; i++) await t.send(PACKET);
    const after = t.h.device.stats();
    expect(after.kicksByQueue.tx - before.kicksByQueue.tx).toBe(8);
    expect(after.txTimerPasses - before.txTimerPasses).toBe(0);
    expect(after.txStreamDeferrals - before.txStreamDeferrals).toBe(0);
  });

  it.each([
    // 64 KiB window, updates every 32 KiB: half of what the guest may still send is 16-32 KiB.
    [{ txKickBatch: 1000, bufAlloc: 64 * 1024 }, PACKET, 7],
    // Our 1 MiB window, but the guest's own 256 KiB caps its credit (Linux 6.1.y): 128 KiB / 4 KiB - 1.
    [{ txKickBatch: 1000, bufAlloc: 1024 * 1024, creditUpdateBytes: 128 * 1024 }, PACKET, 31],
    // 2 KiB packets would fit 64: the ring's quarter (128 / 4) is the bound.
    [{ txKickBatch: 1000, bufAlloc: 1024 * 1024, creditUpdateBytes: 128 * 1024 }, 2048, 32],
  ])('the silent stretch stays within the guest\'s credit and the ring (%o, %i-byte packets: at most %i), nothing lost', async (options, packet, bound) => {
    const t = await streamer(options);
    await t.send(1024 * 1024, packet);
    expect(t.maxSilent()).toBeGreaterThan(1);
    expect(t.maxSilent()).toBeLessThanOrEqual(bound);
    const [sent, atHost] = t.digests();
    expect(atHost).toBe(sent);
    expect(t.h.device.stats().dropped.creditViolation).toBe(0);
  });
});

describe('interrupts and credit updates (the tunables bench/hvsock chose)', () => {
  /** Packets the device took between consecutive tx interrupts, one 1-byte guest write (one packet) per wake-up. */
  async function packetsPerTxInterrupt(options: { txNotifyBatch: number; txNotifyDelayUs: number }, writes: number): Promise<number[]> {
    const h = await harness(options);
    h.setup();
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.resume());
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    h.armInterrupts(TX);
    h.takeInterrupts(TX);
    const counts: number[] = [];
    let since = 0;
    for (let i = 0; i < writes; i++) {
      const before = h.device.stats().packetsFromGuest;
      h.write(sock, Buffer.from([i]));
      h.pump();
      expect(h.device.stats().packetsFromGuest).toBe(before + 1); // consumed (and its used entry pushed) at once
      since++;
      if (h.takeInterrupts(TX) > 0) {
        counts.push(since);
        since = 0;
        h.armInterrupts(TX); // as Linux's tx worker does after reaping
      }
    }
    return counts;
  }

  it('txNotifyBatch 1, delay 0: one tx interrupt per wake-up that consumed packets', async () => {
    expect(await packetsPerTxInterrupt({ txNotifyBatch: 1, txNotifyDelayUs: 0 }, 6)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('txNotifyBatch 4: completions gather, one tx interrupt per 4 packets (the timer is far off)', async () => {
    const counts = await packetsPerTxInterrupt({ txNotifyBatch: 4, txNotifyDelayUs: 10_000_000 }, 15);
    // The first interrupt also covers the REQUEST of the handshake.
    expect(counts.slice(1)).toEqual([4, 4, 4]);
    expect(counts[0]).toBe(3);
  });

  it('txNotifyDelayUs bounds the wait: a lone completion gets its interrupt from the timer', async () => {
    const h = await harness({ txNotifyBatch: 1000, txNotifyDelayUs: 20_000 });
    h.setup();
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.resume());
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    await h.until(() => h.device.stats().interruptsByQueue.tx > 0, 'the handshake REQUEST completion, by the timer');
    h.armInterrupts(TX);
    h.takeInterrupts(TX);
    const before = h.device.stats().interruptsByQueue.tx;
    const used = h.usedIdx(TX);
    h.write(sock, Buffer.from('x'));
    h.pump();
    expect(h.usedIdx(TX)).toBe(used + 1);
    expect(h.takeInterrupts(TX)).toBe(0);
    await h.until(() => h.device.stats().interruptsByQueue.tx > before, 'the timer');
    expect(h.takeInterrupts(TX)).toBe(1);
  });

  it('guest packets for one host socket that arrive in one wake-up leave in one write, in order', async () => {
    const h = await harness();
    h.setup();
    const chunks: Buffer[] = [];
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.on('data', (c: Buffer) => chunks.push(c)));
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    const parts = [randomBytes(100), randomBytes(3000), randomBytes(1), randomBytes(7000)];
    const before = h.device.stats();
    for (const part of parts) h.write(sock, part); // queued on the ring; the device runs on the next pump
    h.pump();
    const after = h.device.stats();
    expect(after.packetsFromGuest - before.packetsFromGuest).toBe(4);
    expect(after.hostWrites - before.hostWrites).toBe(1);
    const all = Buffer.concat(parts);
    await h.until(() => chunks.reduce((n, c) => n + c.length, 0) === all.length, 'the bytes at the host');
    expect(Buffer.concat(chunks).equals(all)).toBe(true);
  });

  it.each([
    [16, 1],
    [1, 10],
  ])('rxBuffersPerRead %i: 40000 host bytes reach the guest in 10 packets (4 KiB buffers) from %i host read(s), in order', async (rxBuffersPerRead, reads) => {
    const h = await harness({ rxBuffersPerRead });
    h.setup();
    h.listen(5000);
    const client = connect(h.device.udsPath);
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    client.write('CONNECT 5000\n');
    await h.until(() => reply === 'OK 5000\n', 'OK line');
    const sock = [...h.sockets.values()][0]!;
    const before = h.device.stats();
    const data = randomBytes(40_000);
    client.write(data);
    await h.until(() => sock.receivedBytes === data.length, 'the bytes in the guest');
    const after = h.device.stats();
    expect(Buffer.concat(sock.received).equals(data)).toBe(true);
    expect(after.packetsToGuest - before.packetsToGuest).toBe(10);
    expect(after.hostReads - before.hostReads).toBe(reads);
    client.destroy();
  });

  it('creditUpdateBytes: a CREDIT_UPDATE goes out once that many forwarded bytes are unannounced, not before', async () => {
    const h = await harness({ bufAlloc: 64 * 1024, creditUpdateBytes: 10_000 });
    h.setup();
    let atHost = 0;
    await listenHost(`${h.device.udsPath}_7000`, (s) => s.on('data', (c: Buffer) => (atHost += c.length)));
    const sock = h.connect(7000);
    await h.until(() => sock.state === 'connected', 'connect');
    const updates = (): number[] => h.rxPackets.filter((p) => p.op === Op.CREDIT_UPDATE).map((p) => p.fwdCnt);
    h.write(sock, randomBytes(9_999));
    await h.until(() => atHost === 9_999, '9999 bytes at the host');
    h.pump();
    expect(updates()).toEqual([]);
    expect(h.device.stats().creditUpdatesSent).toBe(0);
    h.write(sock, Buffer.from('!'));
    await h.until(() => updates().length > 0, 'the update');
    expect(updates()).toEqual([10_000]);
  });
});
