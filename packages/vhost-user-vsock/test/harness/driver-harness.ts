// GuestDriverHarness: a TEST DOUBLE that plays both QEMU (vhost-user over a socketpair,
// guest memory in a memfd) and the guest's virtio-vsock driver (split rings, a small
// vsock stack with credit), in-process and in pure TypeScript. It drives the real device
// (the addon) through its real fds; the host side stays real Unix sockets. The driver
// logic is ours, not Linux's: the QEMU test (qemu.vm.test.ts) covers the real driver.
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { loadBinding } from '@vmlink/native';
import { createVsockDevice, type VsockDevice } from '../../src/index.js';
import {
  decode,
  encode,
  F_EVENT_IDX,
  F_INDIRECT,
  F_PROTOCOL_FEATURES,
  F_SEQPACKET,
  F_VERSION_1,
  FLAG_VERSION,
  memReg,
  PF_CONFIG,
  PF_MEM_SLOTS,
  Req,
  u64,
  vringAddr,
  vringState,
  type Region,
  type Reply,
} from './vhost-user-messages.js';
import { HDR, Op, readHeader, SEQ_EOM, TYPE_SEQPACKET, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM, writeHeader, type Header } from './vsock-header.js';

const binding = loadBinding();
const helpers = binding.vhostUserTestHelpers;

export const QSIZE = 128;
export const RX = 0;
export const TX = 1;
export const EVENT = 2;
const DESC_NEXT = 1;
const DESC_WRITE = 2;
const DESC_INDIRECT = 4;

/** Bytes of the memfd before and after the region the guest shares: the device must never write there. */
export const GUARD = 64 * 1024;
export const REGION_SIZE = 0x200000;
const MEMFD_SIZE = GUARD + REGION_SIZE + GUARD;
const UADDR = 0x7000_0000_0000n;
// Guest-physical layout.
const RINGS = 0x0;
const INDIRECT = 0x10000;
const RX_BUFS = 0x20000;
const RX_BUF_SIZE = 4096;
const TX_BUFS = 0xa0000;
const TX_BUF_SIZE = 8192;
export const SCRATCH = 0x1a0000;
export const HOST_CID = 2n;

const ringBase = (q: number): number => RINGS + q * 0x4000;
const descAt = (q: number, i: number): number => ringBase(q) + 16 * i;
const availAt = (q: number): number => ringBase(q) + 0x1000;
const usedAt = (q: number): number => ringBase(q) + 0x2000;

export interface GuestSocket {
  readonly type: number;
  /** SEQPACKET: whole messages received (EOM seen), and the one being gathered. */
  messages: Buffer[];
  partial: Buffer[];
  readonly localPort: number;
  readonly peerPort: number;
  state: 'connecting' | 'connected' | 'reset';
  received: Buffer[];
  receivedBytes: number;
  peerShutdown: number;
  fwdCnt: number;
  lastSentFwd: number;
  txCnt: number;
  peerBufAlloc: number;
  peerFwdCnt: number;
  toSend: Buffer[];
  /** SHUTDOWN flags to send once toSend is empty. */
  shutdownAfterSend: number;
}

export interface HarnessOptions {
  dir: string;
  name: string;
  guestCid: number;
  bufAlloc?: number;
  maxConnections?: number;
  logLinesPerSecond?: number;
  seqpacket?: boolean;
  creditUpdateBytes?: number;
  txNotifyBatch?: number;
  txNotifyDelayUs?: number;
  rxBuffersPerRead?: number;
  txKickDeferUs?: number;
  txKickBatch?: number;
  txStreamBytes?: number;
  /**
   * Data packets the guest queues per flush (per loop turn under untilFromLoop), as a TCG
   * guest hands its vsock packets to the ring one at a time; default: all that credit allows.
   */
  txPacketsPerTurn?: number;
  /**
   * Kick the tx ring only when the device's avail_event asks for it (EVENT_IDX, as Linux's
   * virtqueue_kick_prepare does); default false: a kick after every packet.
   */
  txKicksByEventIdx?: boolean;
}

/** virtio's vring_need_event: did the index move past `event` going from `old` to `now`? */
function needEvent(event: number, now: number, old: number): boolean {
  return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
}

export class GuestDriverHarness {
  readonly mem: Buffer;
  readonly device: VsockDevice;
  readonly guestCid: number;
  readonly sockets = new Map<string, GuestSocket>();
  /** Listening ports -> socket type. */
  readonly listening = new Map<number, number>();
  readonly guestBufAlloc = 256 * 1024;
  readonly rxPackets: Header[] = [];
  private readonly qemuFd: number;
  private readonly memfd: number;
  private readonly kicks: number[] = [];
  private readonly calls: number[] = [];
  private readonly availIdx = [0, 0, 0];
  private readonly usedSeen = [0, 0, 0];
  private readonly freeTx: number[] = [];
  private nextLocalPort = 40000;
  private closed = false;
  private qemuGone = false;
  private txKicksByEventIdx = false;
  private txPacketsPerTurn = Infinity;
  /** The guest application stops reading: received bytes give no credit back. */
  holdReceived = false;
  /** tx kicks the harness left out because avail_event did not ask for them. */
  txKicksSuppressed = 0;

  private constructor(device: VsockDevice, qemuFd: number, memfd: number, guestCid: number) {
    this.device = device;
    this.qemuFd = qemuFd;
    this.memfd = memfd;
    this.guestCid = guestCid;
    this.mem = helpers.map(memfd, MEMFD_SIZE);
    for (let q = 0; q < 3; q++) {
      this.kicks.push(helpers.eventfd());
      this.calls.push(helpers.eventfd());
    }
  }

  static async create(options: HarnessOptions): Promise<GuestDriverHarness> {
    const [qemuFd, deviceFd] = binding.socketpair('stream');
    const device = await createVsockDevice(
      {
        socket: join(options.dir, `${options.name}.vhost.sock`),
        udsPath: join(options.dir, `${options.name}.sock`),
        guestCid: options.guestCid,
        bufAlloc: options.bufAlloc,
        maxConnections: options.maxConnections,
        logLinesPerSecond: options.logLinesPerSecond ?? 5,
        seqpacket: options.seqpacket,
        creditUpdateBytes: options.creditUpdateBytes,
        txNotifyBatch: options.txNotifyBatch,
        txNotifyDelayUs: options.txNotifyDelayUs,
        rxBuffersPerRead: options.rxBuffersPerRead,
        txKickDeferUs: options.txKickDeferUs,
        txKickBatch: options.txKickBatch,
        txStreamBytes: options.txStreamBytes,
      },
      { vhostConnectedFd: deviceFd },
    );
    const memfd = helpers.memfd(MEMFD_SIZE);
    const harness = new GuestDriverHarness(device, qemuFd, memfd, options.guestCid);
    harness.txKicksByEventIdx = options.txKicksByEventIdx === true;
    harness.txPacketsPerTurn = options.txPacketsPerTurn ?? Infinity;
    return harness;
  }

  // ------------------------------------------------------------------ vhost-user (QEMU's part)

  /** Sends one message, lets the device handle it now, returns its replies. */
  request(request: number, payload?: Buffer, fds: number[] = [], flags = FLAG_VERSION): Reply[] {
    helpers.sendMessage(this.qemuFd, encode(request, payload, flags), fds);
    this.device.serviceNow();
    const bytes = helpers.recv(this.qemuFd, 65536);
    return bytes === null ? [] : decode(bytes);
  }

  /**
   * QEMU 7.2's order: features, memory, then each ring. `rings`: QEMU itself gives a
   * vhost-user vsock backend only rx and tx (it keeps the event ring).
   */
  setup(rings: readonly number[] = [RX, TX, EVENT]): void {
    const features = this.request(Req.GET_FEATURES)[0]!.payload.readBigUInt64LE(0);
    const protocol = this.request(Req.GET_PROTOCOL_FEATURES)[0]!.payload.readBigUInt64LE(0);
    this.request(Req.SET_PROTOCOL_FEATURES, u64(protocol & (PF_CONFIG | PF_MEM_SLOTS)));
    this.request(Req.SET_OWNER);
    this.request(Req.SET_FEATURES, u64(features & (F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | F_PROTOCOL_FEATURES | F_SEQPACKET)));
    this.request(Req.ADD_MEM_REG, memReg(this.region()), [this.memfd]);
    for (const q of rings) this.setupRing(q, 0);
    this.fillRx();
  }

  /** Posts one 8-byte event buffer (at SCRATCH) on the event ring, as a driver does at start. */
  postEventBuffer(): void {
    this.mem.fill(0xff, this.off(SCRATCH), this.off(SCRATCH) + 8);
    this.writeDesc(EVENT, 0, BigInt(SCRATCH), 8, DESC_WRITE, 0);
    this.publish(EVENT, 0);
    this.kick(EVENT);
  }

  /** The event id in the buffer postEventBuffer() gave. */
  lastEventId(): number {
    return this.mem.readUInt32LE(this.off(SCRATCH));
  }

  /** The one region this guest shares: GUARD bytes into the memfd, REGION_SIZE long. */
  region(): Region {
    return { guestPhysAddr: 0n, memorySize: BigInt(REGION_SIZE), userspaceAddr: UADDR, mmapOffset: BigInt(GUARD) };
  }

  get memfdFd(): number {
    return this.memfd;
  }

  setupRing(q: number, base: number): void {
    this.mem.fill(0, this.off(ringBase(q)), this.off(ringBase(q) + 0x4000));
    this.availIdx[q] = base;
    this.usedSeen[q] = base;
    this.mem.writeUInt16LE(base, this.off(availAt(q)) + 2);
    this.mem.writeUInt16LE(base, this.off(usedAt(q)) + 2);
    this.request(Req.SET_VRING_NUM, vringState(q, QSIZE));
    this.request(Req.SET_VRING_BASE, vringState(q, base));
    this.request(Req.SET_VRING_ADDR, vringAddr(q, UADDR + BigInt(descAt(q, 0)), UADDR + BigInt(usedAt(q)), UADDR + BigInt(availAt(q))));
    this.request(Req.SET_VRING_CALL, u64(q), [this.calls[q]!]);
    this.request(Req.SET_VRING_KICK, u64(q), [this.kicks[q]!]);
    this.request(Req.SET_VRING_ENABLE, vringState(q, 1));
    if (q === TX) {
      this.freeTx.length = 0;
      for (let i = QSIZE - 1; i >= 0; i--) this.freeTx.push(i);
    }
  }

  /** A new driver: stop the rings (GET_VRING_BASE) and set them up again. */
  restartRings(): void {
    for (const q of [RX, TX, EVENT]) this.request(Req.GET_VRING_BASE, vringState(q, 0));
    this.sockets.clear();
    for (const q of [RX, TX, EVENT]) this.setupRing(q, 0);
    this.fillRx();
  }

  getConfigCid(): bigint {
    const payload = Buffer.alloc(12 + 8);
    payload.writeUInt32LE(0, 0);
    payload.writeUInt32LE(8, 4);
    const reply = this.request(Req.GET_CONFIG, payload)[0]!;
    return reply.payload.readBigUInt64LE(12);
  }

  // ------------------------------------------------------------------ raw rings (for fuzzing)

  /** memfd offset of a guest-physical address. */
  off(gpa: number): number {
    return GUARD + gpa;
  }

  writeDesc(q: number, index: number, addr: bigint, len: number, flags: number, next: number): void {
    const at = this.off(descAt(q, index));
    this.mem.writeBigUInt64LE(addr, at);
    this.mem.writeUInt32LE(len >>> 0, at + 8);
    this.mem.writeUInt16LE(flags & 0xffff, at + 12);
    this.mem.writeUInt16LE(next & 0xffff, at + 14);
  }

  publish(q: number, head: number): void {
    const avail = this.off(availAt(q));
    this.mem.writeUInt16LE(head & 0xffff, avail + 4 + 2 * (this.availIdx[q]! % QSIZE));
    this.availIdx[q] = (this.availIdx[q]! + 1) & 0xffff;
    this.mem.writeUInt16LE(this.availIdx[q]!, avail + 2);
  }

  /** Writes a raw avail index (a hostile driver may jump it anywhere). */
  setAvailIdx(q: number, value: number): void {
    this.availIdx[q] = value & 0xffff;
    this.mem.writeUInt16LE(value & 0xffff, this.off(availAt(q)) + 2);
  }

  usedIdx(q: number): number {
    return this.mem.readUInt16LE(this.off(usedAt(q)) + 2);
  }

  usedEntry(q: number, n: number): { id: number; len: number } {
    const at = this.off(usedAt(q)) + 4 + 8 * (n % QSIZE);
    return { id: this.mem.readUInt32LE(at), len: this.mem.readUInt32LE(at + 4) };
  }

  kick(q: number): void {
    helpers.eventfdWrite(this.kicks[q]!);
  }

  /** EVENT_IDX: asks for an interrupt once the used index moves past where it is now (Linux's virtqueue_enable_cb). */
  armInterrupts(q: number): void {
    this.mem.writeUInt16LE(this.usedIdx(q), this.off(availAt(q)) + 4 + 2 * QSIZE);
  }

  /** Interrupts the device raised on ring `q` since the last call (reads and clears its call eventfd). */
  takeInterrupts(q: number): number {
    return helpers.eventfdRead(this.calls[q]!);
  }

  // ------------------------------------------------------------------ the driver

  private fillRx(): void {
    for (let i = 0; i < QSIZE; i++) {
      this.writeDesc(RX, i, BigInt(RX_BUFS + i * RX_BUF_SIZE), RX_BUF_SIZE, DESC_WRITE, 0);
      this.publish(RX, i);
    }
    this.kick(RX);
  }

  /** EVENT_IDX: the avail index at which the device wants its next kick (in the used ring). */
  availEvent(q: number): number {
    return this.mem.readUInt16LE(this.off(usedAt(q)) + 4 + 8 * QSIZE);
  }

  /** The guest's avail index on ring `q` (what it has made available so far). */
  availIndex(q: number): number {
    return this.availIdx[q]!;
  }

  /** A CREDIT_UPDATE on `sock`, as a Linux reader sends when it drains its socket. */
  sendCreditUpdate(sock: GuestSocket): void {
    this.sendControl(sock.localPort, sock.peerPort, Op.CREDIT_UPDATE, 0, 0);
  }

  /**
   * Like `until`, but the device runs only from the loop (its kick, host socket and timer
   * watchers), never by `serviceNow`: what a kick the harness left out costs is visible.
   */
  async untilFromLoop(done: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.closed) {
        this.reclaimTx();
        this.drainRx();
        this.flushSends();
      }
      if (done()) return;
      if (Date.now() > deadline) throw new Error(`harness: timed out waiting for ${what}`);
      await tick();
    }
  }

  /** Lets the device run, then takes what it returned on every ring. */
  pump(): void {
    if (this.closed) return;
    this.device.serviceNow();
    this.reclaimTx();
    this.drainRx();
    this.flushSends();
  }

  private reclaimTx(): void {
    while (this.usedSeen[TX] !== this.usedIdx(TX)) {
      const { id } = this.usedEntry(TX, this.usedSeen[TX]!);
      if (id < QSIZE) this.freeTx.push(id);
      this.usedSeen[TX] = (this.usedSeen[TX]! + 1) & 0xffff;
    }
  }

  private drainRx(): void {
    let refilled = false;
    while (this.usedSeen[RX] !== this.usedIdx(RX)) {
      const { id, len } = this.usedEntry(RX, this.usedSeen[RX]!);
      this.usedSeen[RX] = (this.usedSeen[RX]! + 1) & 0xffff;
      if (id >= QSIZE) continue;
      const at = this.off(RX_BUFS + id * RX_BUF_SIZE);
      if (len >= HDR) {
        const header = readHeader(this.mem, at);
        const payload = Buffer.from(this.mem.subarray(at + HDR, at + HDR + Math.min(header.len, len - HDR)));
        this.onPacket(header, payload);
      }
      this.writeDesc(RX, id, BigInt(RX_BUFS + id * RX_BUF_SIZE), RX_BUF_SIZE, DESC_WRITE, 0);
      this.publish(RX, id);
      refilled = true;
    }
    if (refilled) this.kick(RX);
  }

  private key(localPort: number, peerPort: number): string {
    return `${localPort}:${peerPort}`;
  }

  private onPacket(h: Header, payload: Buffer): void {
    this.rxPackets.push(h);
    if (this.rxPackets.length > 1000) this.rxPackets.splice(0, 500);
    const sock = this.sockets.get(this.key(h.dstPort, h.srcPort));
    if (sock !== undefined) {
      sock.peerBufAlloc = h.bufAlloc;
      sock.peerFwdCnt = h.fwdCnt;
    }
    switch (h.op) {
      case Op.REQUEST: {
        if (sock !== undefined || this.listening.get(h.dstPort) !== h.type) {
          this.sendPacket({ ...this.header(h.dstPort, h.srcPort, Op.RST, 0, 0), type: h.type });
          return;
        }
        const accepted = this.newSocket(h.dstPort, h.srcPort, h.type);
        accepted.state = 'connected';
        accepted.peerBufAlloc = h.bufAlloc;
        accepted.peerFwdCnt = h.fwdCnt;
        this.sendControl(h.dstPort, h.srcPort, Op.RESPONSE, 0, 0);
        return;
      }
      case Op.RESPONSE:
        if (sock?.state === 'connecting') sock.state = 'connected';
        return;
      case Op.RST:
        if (sock !== undefined) sock.state = 'reset';
        return;
      case Op.SHUTDOWN:
        if (sock !== undefined) sock.peerShutdown |= h.flags;
        return;
      case Op.RW:
        if (sock === undefined) return;
        sock.received.push(payload);
        sock.receivedBytes += payload.length;
        if (sock.type === TYPE_SEQPACKET) {
          sock.partial.push(payload);
          if (h.flags & SEQ_EOM) sock.messages.push(Buffer.concat(sock.partial.splice(0)));
        }
        // The application reads at once: hand the credit back in big steps, as Linux does.
        if (this.holdReceived) return; // ... unless it is not reading
        sock.fwdCnt = (sock.fwdCnt + payload.length) >>> 0;
        if (((sock.fwdCnt - sock.lastSentFwd) >>> 0) >= this.guestBufAlloc / 2) this.sendControl(sock.localPort, sock.peerPort, Op.CREDIT_UPDATE, 0, 0);
        return;
      case Op.CREDIT_REQUEST:
        if (sock !== undefined) this.sendControl(sock.localPort, sock.peerPort, Op.CREDIT_UPDATE, 0, 0);
        return;
      default:
        return;
    }
  }

  private newSocket(localPort: number, peerPort: number, type = TYPE_STREAM): GuestSocket {
    const sock: GuestSocket = {
      type,
      messages: [],
      partial: [],
      localPort,
      peerPort,
      state: 'connecting',
      received: [],
      receivedBytes: 0,
      peerShutdown: 0,
      fwdCnt: 0,
      lastSentFwd: 0,
      txCnt: 0,
      peerBufAlloc: 0,
      peerFwdCnt: 0,
      toSend: [],
      shutdownAfterSend: 0,
    };
    this.sockets.set(this.key(localPort, peerPort), sock);
    return sock;
  }

  /** Queues one packet on tx (returns false when every tx buffer is in flight). */
  sendPacket(h: Header, payload: Buffer = Buffer.alloc(0)): boolean {
    if (this.freeTx.length === 0) this.reclaimTx();
    const slot = this.freeTx.pop();
    if (slot === undefined) return false;
    const buf = TX_BUFS + slot * TX_BUF_SIZE;
    writeHeader(this.mem, this.off(buf), h);
    payload.copy(this.mem, this.off(buf + HDR));
    if (payload.length === 0) {
      this.writeDesc(TX, slot, BigInt(buf), HDR, 0, 0);
    } else {
      // Header and payload as two descriptors in an indirect table, as Linux lays them out.
      const table = INDIRECT + slot * 32;
      const t = this.off(table);
      this.mem.writeBigUInt64LE(BigInt(buf), t);
      this.mem.writeUInt32LE(HDR, t + 8);
      this.mem.writeUInt16LE(DESC_NEXT, t + 12);
      this.mem.writeUInt16LE(1, t + 14);
      this.mem.writeBigUInt64LE(BigInt(buf + HDR), t + 16);
      this.mem.writeUInt32LE(payload.length, t + 24);
      this.mem.writeUInt16LE(0, t + 28);
      this.mem.writeUInt16LE(0, t + 30);
      this.writeDesc(TX, slot, BigInt(table), 32, DESC_INDIRECT, 0);
    }
    const old = this.availIdx[TX]!;
    this.publish(TX, slot);
    if (!this.txKicksByEventIdx || needEvent(this.availEvent(TX), this.availIdx[TX]!, old)) this.kick(TX);
    else this.txKicksSuppressed++;
    return true;
  }

  private header(localPort: number, peerPort: number, op: number, flags: number, len: number): Header {
    const sock = this.sockets.get(this.key(localPort, peerPort));
    if (sock !== undefined) sock.lastSentFwd = sock.fwdCnt;
    return {
      srcCid: BigInt(this.guestCid),
      dstCid: HOST_CID,
      srcPort: localPort,
      dstPort: peerPort,
      len,
      type: sock?.type ?? TYPE_STREAM,
      op,
      flags,
      bufAlloc: this.guestBufAlloc,
      fwdCnt: sock?.fwdCnt ?? 0,
    };
  }

  private sendControl(localPort: number, peerPort: number, op: number, flags: number, len: number): void {
    this.sendPacket(this.header(localPort, peerPort, op, flags, len));
  }

  /** Guest connect to host port `port` (the device dials `${udsPath}_${port}`). */
  connect(port: number, type = TYPE_STREAM): GuestSocket {
    const sock = this.newSocket(this.nextLocalPort++, port, type);
    this.sendControl(sock.localPort, port, Op.REQUEST, 0, 0);
    return sock;
  }

  listen(port: number, type = TYPE_STREAM): void {
    this.listening.set(port, type);
  }

  write(sock: GuestSocket, data: Buffer): void {
    sock.toSend.push(data);
    this.flushSends();
  }

  /** SHUTDOWN after every queued byte went out (as a socket's shutdown() would). */
  shutdown(sock: GuestSocket, flags = SHUTDOWN_SEND): void {
    sock.shutdownAfterSend |= flags;
    this.flushSends();
  }

  closeSocket(sock: GuestSocket): void {
    this.shutdown(sock, SHUTDOWN_RCV | SHUTDOWN_SEND);
  }

  private flushSends(): void {
    let budget = this.txPacketsPerTurn;
    for (const sock of this.sockets.values()) {
      while (sock.state === 'connected' && sock.toSend.length > 0 && budget-- > 0) {
        const credit = sock.peerBufAlloc - ((sock.txCnt - sock.peerFwdCnt) >>> 0);
        if (credit <= 0 || this.freeTx.length === 0) break;
        const first = sock.toSend[0]!;
        const n = Math.min(first.length, credit, TX_BUF_SIZE - HDR);
        const chunk = first.subarray(0, n);
        // SEQPACKET: each write is one message, EOM on its last piece.
        const eom = sock.type === TYPE_SEQPACKET && n === first.length ? SEQ_EOM : 0;
        if (!this.sendPacket(this.header(sock.localPort, sock.peerPort, Op.RW, eom, n), chunk)) break;
        sock.txCnt = (sock.txCnt + n) >>> 0;
        if (n === first.length) sock.toSend.shift();
        else sock.toSend[0] = first.subarray(n);
      }
      if (sock.toSend.length === 0 && sock.shutdownAfterSend !== 0 && this.freeTx.length > 0) {
        this.sendControl(sock.localPort, sock.peerPort, Op.SHUTDOWN, sock.shutdownAfterSend, 0);
        sock.shutdownAfterSend = 0;
      }
    }
  }

  /** Pumps (and yields to the loop, where the host sockets live) until `done`. */
  async until(done: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.pump();
      if (done()) return;
      if (Date.now() > deadline) throw new Error(`harness: timed out waiting for ${what}`);
      await tick();
    }
  }

  /** QEMU exits (or is killed): its end of the vhost-user socket closes. */
  disconnectQemu(): void {
    if (this.qemuGone) return;
    this.qemuGone = true;
    closeSync(this.qemuFd);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.device.close();
    this.disconnectQemu();
    closeSync(this.memfd);
    for (const fd of [...this.kicks, ...this.calls]) closeSync(fd);
  }
}

/** Pumps many harnesses together until `done`. */
export async function pumpAll(harnesses: readonly GuestDriverHarness[], done: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const h of harnesses) h.pump();
    if (done()) return;
    if (Date.now() > deadline) throw new Error(`harness: timed out waiting for ${what}`);
    await tick();
  }
}
