import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBinding } from '@vmlink/native';
import type { Connection } from '@vmlink/transport';
import { VirtioSerialListener } from '../src/guest-listener.js';
import { virtioSerial } from '../src/index.js';
import { FILLER_SIZE, FrameType, HEADER_SIZE, encodeData, encodeHeader, newNonce } from '../src/wire.js';
import { startFakePort, type FakePort } from './helpers/fake-port.js';

// The handshake on real fds: the guest listener on a socketpair behind a fake QEMU
// socket (test/helpers/fake-port.ts). A socketpair never hangs up, so every case here is
// one where the guest did NOT see the host leave: the protocol alone must cope.
const host = virtioSerial({ side: 'host' });
const guest = virtioSerial({ side: 'guest' });
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ port: FakePort; listener: VirtioSerialListener; address: string; next(): Promise<Connection> }> {
  const port = await startFakePort();
  const listener = new VirtioSerialListener(guest, port.guestFd, 'virtio-serial:fake');
  cleanups.push(async () => {
    await listener.close();
    await port.close();
  });
  const iterator = listener[Symbol.asyncIterator]();
  const next = async (): Promise<Connection> => (await iterator.next()).value as Connection;
  return { port, listener, address: `virtio-serial+unix:${port.socketPath}`, next };
}

function closed(connection: Connection): Promise<void> {
  return new Promise((resolve) => (connection.closed ? resolve() : connection.once('close', () => resolve())));
}

function collect(connection: Connection): { text: () => string } {
  let text = '';
  connection.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  connection.on('error', () => {});
  return { text: () => text };
}

describe('handshake', () => {
  it('stale bytes in the port (even a stale HELLO) never reach a new Connection', async () => {
    const { port, address, next } = await setup();
    const stale = Buffer.concat([
      Buffer.from('garbage from an old host \xff\xff vs'),
      encodeHeader(FrameType.hello, newNonce()),
      encodeHeader(FrameType.open, newNonce()),
      ...encodeData(newNonce(), [Buffer.from('stale data record')]),
    ]);
    await port.injectToGuest(stale);
    const dialed = await host.dial(address, { timeout: 10_000 });
    dialed.on('error', () => {});
    const accepted = await next();
    const seen = collect(accepted);
    dialed.write('fresh');
    await once(accepted, 'data');
    expect(seen.text()).toBe('fresh');
    dialed.destroy();
  });

  it('a host that vanished mid-record is followed by a new host at once: the old Connection is reset, the new one is clean', async () => {
    const { address, next } = await setup();
    // The old host speaks the protocol by hand so that it can die in the middle of a record.
    const nonce = newNonce();
    const socket = createConnection(address.slice('virtio-serial+unix:'.length));
    await once(socket, 'connect');
    socket.on('error', () => {});
    socket.write(encodeHeader(FrameType.hello, nonce));
    const [ack] = (await once(socket, 'data')) as [Buffer];
    expect(ack.subarray(0, HEADER_SIZE).equals(encodeHeader(FrameType.ack, nonce))).toBe(true);
    const oldConnection = next();
    socket.write(encodeHeader(FrameType.open, nonce));
    const old = await oldConnection;
    const oldSeen = collect(old);
    const oldClosed = closed(old);
    socket.end(Buffer.concat([encodeHeader(FrameType.data, nonce, 10_000), Buffer.alloc(100, 0x41)]));

    const dialed = await host.dial(address, { timeout: 10_000 });
    dialed.on('error', () => {});
    const fresh = await next();
    await oldClosed;
    expect(old.errored).toMatchObject({ code: 'ECONNRESET' });
    // What the old Connection got: its 100 bytes, then at most the filler's zeros completing its record.
    expect(oldSeen.text().slice(0, 100)).toBe('A'.repeat(100));
    expect(oldSeen.text().length).toBeLessThanOrEqual(10_000);
    expect(FILLER_SIZE).toBeGreaterThan(10_000 - 100);
    const seen = collect(fresh);
    dialed.write('only this');
    await once(fresh, 'data');
    expect(seen.text()).toBe('only this');
    dialed.destroy();
  });

  it('a new host while the guest still holds the old Connection (missed hang-up): the old one is reset with ECONNRESET', async () => {
    const { port, address, next } = await setup();
    const first = await host.dial(address, { timeout: 10_000 });
    first.on('error', () => {});
    const old = await next();
    old.on('error', () => {});
    port.dropHost(); // killed host: no END record, and a socketpair never hangs up
    first.destroy();
    const second = await host.dial(address, { timeout: 10_000 });
    second.on('error', () => {});
    const fresh = await next();
    await closed(old);
    expect(old.errored).toMatchObject({ code: 'ECONNRESET' });
    const seen = collect(fresh);
    second.write('hi');
    await once(fresh, 'data');
    expect(seen.text()).toBe('hi');
    second.destroy();
  });

  it('the host takes a second ACK of its nonce as a duplicate (a guest answers a repeated HELLO again when a hang-up dropped its ACK)', async () => {
    // The guest is played by hand on the fake port's guest end: it answers the first HELLO twice.
    const port = await startFakePort();
    const guestEnd = new (loadBinding().FdStream)(port.guestFd, {}, { onData: (chunk: Buffer) => onGuestData(chunk), onError: () => {} });
    cleanups.push(async () => {
      guestEnd.close();
      await port.close();
    });
    let fromHost = Buffer.alloc(0);
    let answered = false;
    const onGuestData = (chunk: Buffer): void => {
      fromHost = Buffer.concat([fromHost, chunk]);
      const at = fromHost.indexOf(Buffer.from([0xff, 0x76, 0x73, FrameType.hello]));
      if (answered || at < 0 || fromHost.length < at + HEADER_SIZE) return;
      answered = true;
      const nonce = fromHost.readBigUInt64BE(at + 4);
      const ack = encodeHeader(FrameType.ack, nonce);
      guestEnd.write([ack, ack, ...encodeData(nonce, [Buffer.from('after two ACKs')])], () => {});
    };
    guestEnd.readStart();
    const dialed = await host.dial(`virtio-serial+unix:${port.socketPath}`, { timeout: 10_000 });
    const seen = collect(dialed);
    while (seen.text().length < 'after two ACKs'.length) await once(dialed, 'data');
    expect(seen.text()).toBe('after two ACKs');
    expect(dialed.errored).toBeNull();
    dialed.destroy();
  });

  it("the guest's end() reaches the host as 'end' (half-close), and the host can still answer", async () => {
    const { address, next } = await setup();
    const dialed = await host.dial(address, { timeout: 10_000 });
    const accepted = await next();
    const seen = collect(accepted);
    accepted.end('bye');
    const hostSeen = collect(dialed);
    await once(dialed, 'end');
    expect(hostSeen.text()).toBe('bye');
    dialed.end('ok');
    await once(accepted, 'close');
    expect(seen.text()).toBe('ok');
  });
});

describe('addresses and operations', () => {
  it('hangupGraceMs: an integer 0..60000, else a typed error naming it', () => {
    expect(() => virtioSerial({ hangupGraceMs: 0 })).not.toThrow();
    expect(() => virtioSerial({ hangupGraceMs: 60_000 })).not.toThrow();
    expect(() => virtioSerial({ hangupGraceMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.hangupGraceMs') }));
    expect(() => virtioSerial({ hangupGraceMs: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => virtioSerial({ hangupGraceMs: 60_001 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => virtioSerial({ hangupGraceMs: '5' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.hangupGraceMs') }));
  });

  it('parses both schemes and refuses bad ones', () => {
    const both = virtioSerial();
    expect(both.parse('virtio-serial:org.example.0')).toMatchObject({ name: 'org.example.0', devicePath: '/dev/virtio-ports/org.example.0' });
    expect(both.parse('virtio-serial+unix:/run/vm.sock')).toMatchObject({ path: '/run/vm.sock' });
    for (const bad of ['virtio-serial:', 'virtio-serial:a/b', 'virtio-serial:..', 'virtio-serial:has space', 'virtio-serial+unix:', 'virtio-serial+unix://x', `virtio-serial+unix:/${'x'.repeat(120)}`]) {
      expect(() => both.parse(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining(`'${bad}'`) }));
    }
    expect(() => host.parse('virtio-serial:org.example.0')).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS' }));
    expect(host.capabilities).toEqual({ multiConnection: false, halfClose: true, messageBoundaries: false, listen: false });
    expect(both.capabilities.listen).toBe(true);
    expect(() => virtioSerial({ side: 'middle' as 'host' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('listen on the host side and dial on the guest side fail with ERR_VMLINK_UNSUPPORTED_OPERATION', async () => {
    const both = virtioSerial();
    await expect(both.listen('virtio-serial+unix:/tmp/x.sock')).rejects.toMatchObject({ code: 'ERR_VMLINK_UNSUPPORTED_OPERATION' });
    await expect(both.dial('virtio-serial:org.example.0')).rejects.toMatchObject({ code: 'ERR_VMLINK_UNSUPPORTED_OPERATION' });
  });

  it('no socket file: ENOENT; a socket file nobody listens on: ECONNREFUSED', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmlink-vs-refused-'));
    try {
      await expect(host.dial(`virtio-serial+unix:${join(dir, 'none.sock')}`)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'connect' });
      const path = join(dir, 'dead.sock');
      // A killed QEMU leaves its socket file behind with nobody listening.
      spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
      await expect(host.dial(`virtio-serial+unix:${path}`)).rejects.toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
