// A hostile guest, fuzzed (the device offers STREAM and SEQPACKET): 100,000 seeded random and mutated descriptor chains and
// packets go through the real device (driven by GuestDriverHarness, the QEMU + driver
// test double). The device must drop each bad one with a counter, never crash or hang,
// consume every chain it was given, and never write outside the memory the guest shared
// (guard bytes of the memfd around the region are checked).
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBinding } from '@vmlink/native';
import { totalDropped } from '../src/index.js';
import { GUARD, GuestDriverHarness, QSIZE, REGION_SIZE, RX, SCRATCH, TX } from './harness/driver-harness.js';
import { Req, encode } from './harness/vhost-user-messages.js';
import { HDR, Op, TYPE_STREAM, writeHeader, type Header } from './harness/vsock-header.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-vuv-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** mulberry32: small, seeded, good enough to pick cases reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GUARD_BYTE = 0xa5;
const SCRATCH_SIZE = REGION_SIZE - SCRATCH;

function guardsIntact(mem: Buffer): boolean {
  const head = mem.subarray(0, GUARD);
  const tail = mem.subarray(GUARD + REGION_SIZE);
  return head.every((b) => b === GUARD_BYTE) && tail.every((b) => b === GUARD_BYTE);
}

describe('hostile guest fuzz', () => {
  it('100,000 random and mutated descriptor chains and packets: all dropped or handled, counted, nothing outside the region touched', async () => {
    const seed = Number(process.env.VMLINK_FUZZ_SEED ?? 20261205);
    const random = rng(seed);
    const int = (n: number): number => Math.floor(random() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

    const h = await GuestDriverHarness.create({ dir, name: 'fuzz', guestCid: 3, bufAlloc: 16 * 1024, maxConnections: 256, logLinesPerSecond: 1 << 20, seqpacket: true });
    const logs: string[] = [];
    const resets = new Map<string, number>();
    h.device.on('log', (line) => {
      logs.push(line);
      const m = /reset: .*: (E[A-Z]+)$/.exec(line);
      if (m) resets.set(m[1]!, (resets.get(m[1]!) ?? 0) + 1);
    });
    const server: Server = createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((resolve) => server.listen(`${h.device.udsPath}_7000`, resolve));
    // A SOCK_SEQPACKET host listener on 7001 whose connections are drained at every yield.
    const native = loadBinding();
    const seqListen = native.unixListen(`${h.device.udsPath}_7001`, 512, 'seqpacket');
    const seqConns: number[] = [];
    const drainSeqpacket = (): void => {
      for (let fd = native.vhostUserTestHelpers.accept(seqListen); fd !== null; fd = native.vhostUserTestHelpers.accept(seqListen)) seqConns.push(fd);
      for (const [i, fd] of [...seqConns.entries()].reverse()) {
        let open = true;
        try {
          for (let r = native.vhostUserTestHelpers.recv(fd, 1 << 20); r !== null; r = native.vhostUserTestHelpers.recv(fd, 1 << 20)) {
            if (r.length === 0) {
              open = false; // EOF
              break;
            }
          }
        } catch {
          open = false; // ECONNRESET: the device reset it
        }
        if (!open) {
          closeSync(fd);
          seqConns.splice(i, 1);
        }
      }
    };
    h.mem.fill(GUARD_BYTE, 0, GUARD);
    h.mem.fill(GUARD_BYTE, GUARD + REGION_SIZE);
    h.setup();

    const addrChoices = (len: number, ringsToo = true): bigint[] => [
      BigInt(SCRATCH + int(SCRATCH_SIZE - 8192)), // valid
      BigInt(SCRATCH + int(SCRATCH_SIZE)), // valid start, maybe running past the end
      BigInt(REGION_SIZE - int(64)), // straddles the end of the region
      BigInt(REGION_SIZE + int(1 << 20)), // outside
      (1n << 63n) + BigInt(int(1 << 30)), // far outside
      0xffff_ffff_ffff_ffffn - BigInt(int(len + 1)), // wraps around
      ringsToo || random() < 0.05 ? BigInt(int(0x10000)) : BigInt(SCRATCH), // the rings themselves (guest memory all the same)
    ];
    const lenChoices = (): number => pick([0, 1, 43, HDR, HDR + int(4096), int(65536 + HDR + 10), 0xffff_ffff, int(1 << 20)]);

    const validHeader = (): Header => ({
      srcCid: 3n,
      dstCid: 2n,
      srcPort: 1 + int(8),
      dstPort: pick([7000, 7000, 7000, 7001, int(0xffffffff)]),
      len: 0,
      type: TYPE_STREAM,
      op: pick([Op.REQUEST, Op.RW, Op.RW, Op.RW, Op.SHUTDOWN, Op.CREDIT_UPDATE, Op.CREDIT_REQUEST, Op.RST, Op.RESPONSE]),
      flags: 0,
      bufAlloc: 256 * 1024,
      fwdCnt: 0,
    });
    const mutate = (hd: Header): Header => {
      const field = int(10);
      const r32 = (): number => pick([0, 1, 0xffffffff, 0x7fffffff, int(0xffffffff), 65536, 65537]);
      switch (field) {
        case 0: return { ...hd, srcCid: pick([0n, 1n, 2n, 4n, 0xffffffffn, 1n << 63n]) };
        case 1: return { ...hd, dstCid: pick([0n, 1n, 3n, 0xffffffffn]) };
        case 2: return { ...hd, len: r32() };
        case 3: return { ...hd, type: pick([0, 2, 2, 2, 3, 0xffff]), flags: pick([0, 1, 2, 3]) };
        case 4: return { ...hd, op: pick([0, 8, 9, 0xffff]) };
        case 5: return { ...hd, flags: r32() };
        case 6: return { ...hd, bufAlloc: r32() };
        case 7: return { ...hd, fwdCnt: r32() };
        case 8: return { ...hd, srcPort: r32(), dstPort: r32() };
        default: return hd;
      }
    };

    const ITERATIONS = Number(process.env.VMLINK_FUZZ_ITERATIONS ?? 100_000);
    let restarts = 0;
    let brokenSeen = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const scenario = int(100);
      if (scenario < 35) {
        // Random descriptor chain on tx: loops, bad indexes, indirect tables, wild addresses.
        const count = 1 + int(6);
        const indexes = Array.from({ length: count }, () => int(QSIZE));
        for (let k = 0; k < count; k++) {
          const len = lenChoices();
          const flags = pick([0, 1, 2, 3, 4, 5, 6, 7]) | (k < count - 1 && random() < 0.7 ? 1 : 0);
          const next = random() < 0.8 ? indexes[(k + 1) % count]! : int(0x10000);
          let addr = pick(addrChoices(len));
          if (flags & 4 && random() < 0.5) {
            // An indirect table with random descriptors in it.
            const tableLen = pick([16, 32, 48, 64, 17, 0, 16 * 1100]);
            const at = SCRATCH + int(SCRATCH_SIZE - 20000);
            for (let e = 0; e < Math.min(tableLen, 16 * 8) / 16; e++) {
              const o = h.off(at + e * 16);
              h.mem.writeBigUInt64LE(pick(addrChoices(64)), o);
              h.mem.writeUInt32LE(lenChoices() >>> 0, o + 8);
              h.mem.writeUInt16LE(int(8), o + 12);
              h.mem.writeUInt16LE(int(10), o + 14);
            }
            addr = BigInt(at);
            h.writeDesc(TX, indexes[k]!, addr, tableLen, flags, next);
            continue;
          }
          if (addr < BigInt(REGION_SIZE - HDR) && addr >= BigInt(SCRATCH)) {
            const at = h.off(Number(addr));
            writeHeader(h.mem, at, mutate({ ...validHeader(), len: int(100) }));
          }
          h.writeDesc(TX, indexes[k]!, addr, len, flags, next);
        }
        h.publish(TX, indexes[0]!);
        h.kick(TX);
      } else if (scenario < 80) {
        // A valid-looking packet with one field mutated (or none), in one descriptor.
        const slot = int(QSIZE);
        const at = SCRATCH + int(Math.floor(SCRATCH_SIZE / 8192) - 1) * 8192;
        const payloadLen = int(4096);
        const hd = random() < 0.3 ? { ...validHeader(), len: payloadLen } : mutate({ ...validHeader(), len: payloadLen });
        writeHeader(h.mem, h.off(at), hd);
        const descLen = random() < 0.9 ? HDR + payloadLen : int(HDR + payloadLen);
        h.writeDesc(TX, slot, BigInt(at), descLen, 0, 0);
        h.publish(TX, slot);
        h.kick(TX);
      } else if (scenario < 98) {
        // Random rx buffers: the device writes RSTs and data into whatever the guest offers.
        const count = 1 + int(4);
        for (let k = 0; k < count; k++) {
          const idx = int(QSIZE);
          const len = lenChoices();
          h.writeDesc(RX, idx, pick(addrChoices(len, false)), len, pick([0, 2, 2, 2, 3, 4, 6]), int(QSIZE));
          h.publish(RX, idx);
        }
        h.kick(RX);
      } else if (scenario < 99) {
        // Avail index jumps (a corrupt ring): the queue must be marked broken, not walked.
        h.setAvailIdx(pick([TX, RX]), int(0x10000));
        h.kick(TX);
        h.kick(RX);
      } else {
        // Kick with nothing new.
        h.kick(TX);
      }
      h.device.serviceNow();

      const txAvail = h.mem.readUInt16LE(h.off(0x4000 + 0x1000) + 2);
      if (h.usedIdx(TX) !== txAvail || scenario >= 98 || i % 100 === 0) {
        const broken = h.device.stats().queuesBroken;
        if (broken > brokenSeen) {
          brokenSeen = broken;
          h.restartRings();
          restarts++;
        } else {
          // Every chain given on a healthy tx ring was consumed: no chain left hanging.
          expect(h.usedIdx(TX)).toBe(txAvail);
        }
      }
      // Let the host sockets (real, on the loop) move: Node accepts one connection per loop turn.
      if (i % 25 === 0) {
        drainSeqpacket();
        await tick();
      }
      if (i % 5000 === 0) expect(guardsIntact(h.mem)).toBe(true);
    }

    expect(guardsIntact(h.mem)).toBe(true);
    const stats = h.device.stats();
    expect(stats.dropped.badChain).toBeGreaterThan(1000);
    expect(stats.dropped.badLen).toBeGreaterThan(100);
    expect(stats.dropped.oversize).toBeGreaterThan(100);
    expect(stats.dropped.badSrcCid).toBeGreaterThan(100);
    expect(stats.dropped.badDstCid).toBeGreaterThan(100);
    expect(stats.dropped.badType).toBeGreaterThan(100);
    expect(stats.dropped.rxChain).toBeGreaterThan(100);
    expect(stats.queuesBroken).toBeGreaterThan(10);
    expect(totalDropped(stats)).toBeGreaterThan(10_000);
    expect(logs.length).toBeGreaterThan(0);
    expect(stats.bufferedBytes).toBeLessThanOrEqual(256 * 16 * 1024);
    // One restart can follow more than one broken ring (rx and tx in the same step).
    expect(restarts).toBeGreaterThan(10);
    expect(restarts).toBeLessThanOrEqual(stats.queuesBroken);

    // After all that, a well-behaved driver on the same device still gets through.
    h.restartRings();
    // Node accepts one connection per loop turn: the echo server's backlog may still be
    // full from the fuzz (the device then resets, as it should): try until it has room.
    let sock = h.connect(7000);
    for (let attempt = 0; attempt < 1000 && sock.state !== 'connected'; attempt++) {
      await h.until(() => sock.state !== 'connecting', 'connect after the fuzz');
      if (sock.state === 'reset') sock = h.connect(7000);
    }
    await h.until(() => sock.state === 'connected', 'connect after the fuzz').catch((err: unknown) => {
      throw new Error(`${String(err)}; host connect resets by errno ${JSON.stringify([...resets])}; socket ${sock.state}; stats ${JSON.stringify(h.device.stats())}; last packets ${JSON.stringify(h.rxPackets.slice(-5), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}; logs ${logs.slice(-10).join(' | ')}`);
    });
    h.write(sock, Buffer.from('still alive'));
    await h.until(() => Buffer.concat(sock.received).toString() === 'still alive', 'echo after the fuzz');
    server.close();
    for (const fd of [...seqConns, seqListen]) closeSync(fd);
    await h.close();
  }, 600_000);

  it('2,000 random vhost-user messages: refused or handled, the device keeps serving', async () => {
    const random = rng(7);
    const int = (n: number): number => Math.floor(random() * n);
    const h = await GuestDriverHarness.create({ dir, name: 'fuzz-vu', guestCid: 3 });
    h.setup();
    const requests = Object.values(Req).filter((r) => r !== Req.SET_MEM_TABLE && r !== Req.ADD_MEM_REG && r !== Req.REM_MEM_REG);
    for (let i = 0; i < 2000; i++) {
      const request = random() < 0.8 ? requests[int(requests.length)]! : int(100);
      const payload = Buffer.alloc(int(300));
      for (let k = 0; k < payload.length; k++) payload[k] = random() < 0.5 ? 0 : int(256);
      if (payload.length >= 4) payload.writeUInt32LE(int(5), 0); // plausible ring indexes often
      h.request(request, payload);
    }
    // Malformed framing: a header that claims 1 MiB of payload drops the QEMU connection, not the process.
    const disconnected = new Promise<string>((resolve) => h.device.once('qemu-disconnected', resolve));
    h.request(Req.GET_FEATURES, undefined);
    const huge = encode(Req.SET_FEATURES, Buffer.alloc(8));
    huge.writeUInt32LE(1 << 20, 8);
    (await import('@vmlink/native')).loadBinding().vhostUserTestHelpers.sendMessage((h as unknown as { qemuFd: number }).qemuFd, huge, []);
    h.device.serviceNow();
    expect(await disconnected).toMatch(/1048576 bytes/);
    const stats = h.device.stats();
    expect(stats.vhostUserErrors).toBeGreaterThan(100);
    expect(stats.qemuAttached).toBe(false);
    await h.close();
  }, 120_000);
});
