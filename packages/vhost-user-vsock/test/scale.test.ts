// Scale: 64 simulated VMs (GuestDriverHarness, the QEMU + driver test double) served by
// 64 devices in this one process, 64 connections each (32 guest -> host, 32 host -> guest),
// every byte checked, all at once on one Node loop.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { totalDropped } from '../src/index.js';
import { GuestDriverHarness, pumpAll, type GuestSocket } from './harness/driver-harness.js';
import { SHUTDOWN_SEND } from './harness/vsock-header.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-vuv-scale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VMS = 64;
const PER_DIRECTION = 32;
const BYTES = 4096;

describe('scale', () => {
  it(`${VMS} VMs x ${PER_DIRECTION * 2} connections in one process, every byte echoed back`, async () => {
    const harnesses: GuestDriverHarness[] = [];
    const servers: Server[] = [];
    const clients: Socket[] = [];
    try {
      for (let vm = 0; vm < VMS; vm++) {
        const h = await GuestDriverHarness.create({ dir, name: `vm${vm}`, guestCid: 3 + vm });
        harnesses.push(h);
        h.setup();
        h.listen(5000);
        const server = createServer((s) => s.pipe(s));
        await new Promise<void>((resolve) => server.listen(`${h.device.udsPath}_7000`, resolve));
        servers.push(server);
      }

      // guest -> host
      const outgoing: { h: GuestDriverHarness; sock: GuestSocket; data: Buffer }[] = [];
      for (const h of harnesses) {
        for (let i = 0; i < PER_DIRECTION; i++) {
          const data = randomBytes(BYTES);
          const sock = h.connect(7000);
          h.write(sock, data);
          h.shutdown(sock, SHUTDOWN_SEND);
          outgoing.push({ h, sock, data });
        }
      }
      // host -> guest
      const incoming: Promise<{ sent: Buffer; got: Buffer }>[] = [];
      for (const h of harnesses) {
        for (let i = 0; i < PER_DIRECTION; i++) {
          const sent = randomBytes(BYTES);
          incoming.push(
            new Promise((resolve, reject) => {
              const c = connect(h.device.udsPath);
              clients.push(c);
              const chunks: Buffer[] = [];
              c.on('data', (d: Buffer) => chunks.push(d));
              c.on('end', () => resolve({ sent, got: Buffer.concat(chunks) }));
              c.on('error', reject);
              c.end(Buffer.concat([Buffer.from('CONNECT 5000\n'), sent]));
            }),
          );
        }
      }
      let hostDone = 0;
      void Promise.all(incoming).then(() => (hostDone = incoming.length));
      const echoed = new Set<GuestSocket>();
      await pumpAll(
        harnesses,
        () => {
          // The guest side of host -> guest connections echoes once the host's EOF is in.
          for (const h of harnesses) {
            for (const sock of h.sockets.values()) {
              if (sock.localPort === 5000 && !echoed.has(sock) && (sock.peerShutdown & SHUTDOWN_SEND) !== 0) {
                echoed.add(sock);
                h.write(sock, Buffer.concat(sock.received));
                h.shutdown(sock, SHUTDOWN_SEND);
              }
            }
          }
          const outDone = outgoing.every(({ sock }) => (sock.peerShutdown & SHUTDOWN_SEND) !== 0);
          return outDone && hostDone === incoming.length;
        },
        'every connection echoed',
        300_000,
      );
      for (const { sock, data } of outgoing) expect(Buffer.concat(sock.received).equals(data)).toBe(true);
      for (const { sent, got } of await Promise.all(incoming)) expect(got.equals(Buffer.concat([Buffer.from('OK 5000\n'), sent]))).toBe(true);
      for (const h of harnesses) {
        const stats = h.device.stats();
        expect(stats.connectionsOpened).toBe(PER_DIRECTION * 2);
        expect(totalDropped(stats)).toBe(0);
        expect(stats.bufferedBytes).toBe(0);
      }
    } finally {
      for (const c of clients) c.destroy();
      for (const s of servers) s.close();
      for (const h of harnesses) await h.close();
    }
  }, 600_000);
});
