import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '@vmlink/transport';
import { HANGUP_GRACE_MS, VirtioSerialListener } from '../src/guest-listener.js';
import { virtioSerial } from '../src/index.js';
import { FILLER_SIZE, FrameType, encodeData, encodeHeader } from '../src/wire.js';
import { startPtyPort, type PtyHost, type PtyPort } from './helpers/pty-port.js';

// Hang-ups that are not the current host's, on real fds (a pty: test/helpers/pty-port.ts).
// In a guest, the kernel learns of hosts coming and going on virtio-serial's control
// queue and gets their bytes on the data queue; the two are not ordered, so a former
// host's departure can be reported after the new host's HELLO was read and answered
// (seen in CI: an emulated arm64 guest ignored the new host's OPEN, and the host's
// request hung). Here the host plays exactly that: HELLO, our ACK, then a hang-up and the
// port back, and the same host goes on with OPEN.
const guest = virtioSerial({ side: 'guest' });
const LIVENESS_MS = 30_000;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + LIVENESS_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await delay(5);
  }
}

/** Grace long enough that only a missing rule (not a slow machine) lets it run out. */
const LONG_GRACE_MS = 10_000;

function setup(options: { reading?: boolean; hangupGraceMs?: number } = {}): { port: PtyPort; listener: VirtioSerialListener; accepted: Connection[] } {
  const port = startPtyPort({ reading: options.reading ?? true });
  const listener = new VirtioSerialListener(guest, port.guestFd, 'virtio-serial:pty', undefined, { hangupGraceMs: options.hangupGraceMs ?? HANGUP_GRACE_MS });
  const accepted: Connection[] = [];
  listener.on('connection', (connection: Connection) => {
    connection.on('error', () => {});
    accepted.push(connection);
  });
  cleanups.push(async () => {
    for (const connection of accepted) connection.destroy();
    await listener.close();
    port.close();
  });
  return { port, listener, accepted };
}

const contains = (host: PtyHost, record: Buffer): boolean => host.received().includes(record);

/** The rest of the handshake and one exchange: OPEN, DATA "ping" from the host, "pong" back. */
async function openAndExchange(host: PtyHost, nonce: bigint, accepted: Connection[]): Promise<void> {
  await host.write(Buffer.concat([encodeHeader(FrameType.open, nonce), ...encodeData(nonce, [Buffer.from('ping')])]));
  await until('the guest accepted the Connection', () => accepted.length === 1);
  const connection = accepted[0] as Connection;
  let text = '';
  connection.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  await until('the Connection read "ping"', () => text === 'ping');
  connection.write('pong');
  await until('the host read DATA "pong"', () => contains(host, Buffer.concat(encodeData(nonce, [Buffer.from('pong')]))));
}

describe('a hang-up reported after the new host was answered', { timeout: LIVENESS_MS * 2 }, () => {
  it('between ACK and OPEN it does not end the session: the host that sent HELLO gets its Connection', async () => {
    const { port, listener, accepted } = setup();
    const nonce = 0x1122334455667788n;
    const host = port.host as PtyHost;
    await host.write(Buffer.concat([Buffer.alloc(FILLER_SIZE), encodeHeader(FrameType.hello, nonce)]));
    await until('the host read ACK', () => contains(host, encodeHeader(FrameType.ack, nonce)));

    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    const back = port.reopen();
    await openAndExchange(back, nonce, accepted);
    expect(listener.hostAway).toBe(false);
    // One ACK: the hang-up did not make the guest answer again.
    expect(back.received().includes(encodeHeader(FrameType.ack, nonce))).toBe(false);
  });

  it('an ACK that the hang-up dropped unsent is sent again when the same host repeats HELLO', async () => {
    const { port, listener, accepted } = setup({ reading: false });
    // The session's state is private; peeking at it shows the ACK waiting for room, then lost.
    const session = listener as unknown as { phase: string; nonce: bigint | undefined; ack: string; inFlight: unknown };
    // Hosts that never read fill the port with ACKs: each HELLO (a new nonce) ends the
    // session before it and is answered, until an ACK waits for room.
    const host = port.host as PtyHost;
    await host.write(Buffer.alloc(FILLER_SIZE));
    let next = 0x1000n;
    for (let batch = 0; batch < 100 && session.inFlight === undefined; batch++) {
      const hellos = Array.from({ length: 2_000 }, () => encodeHeader(FrameType.hello, next++));
      await host.write(Buffer.concat(hellos));
      await until('the guest answered the last HELLO', () => session.nonce === next - 1n);
    }
    expect(session.inFlight).toBeDefined(); // the port is full

    // A HELLO and the hang-up in the same tick: the guest reads the HELLO, which ends the
    // session before it and drops its waiting ACK, and the new ACK meets the still full
    // port; then it reads the hang-up, which drops that ACK too.
    const nonce = 0x2233445566778899n;
    void host.write(encodeHeader(FrameType.hello, nonce));
    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    expect({ phase: session.phase, nonce: session.nonce, ack: session.ack }).toEqual({ phase: 'acked', nonce, ack: 'lost' });

    // The same host is back (it was never away: the hang-up was a former host's, late),
    // reads, and repeats HELLO: the guest answers again, and OPEN gives the Connection.
    const back = port.reopen();
    await back.write(encodeHeader(FrameType.hello, nonce));
    await until('the host read ACK', () => contains(back, encodeHeader(FrameType.ack, nonce)));
    accepted.length = 0;
    await openAndExchange(back, nonce, accepted);
  });
});

/** HELLO, ACK, OPEN: the guest's Connection for `nonce` (the host end reads). */
async function connect(port: PtyPort, nonce: bigint, accepted: Connection[]): Promise<{ host: PtyHost; connection: Connection; text: () => string }> {
  const host = port.host as PtyHost;
  await host.write(Buffer.concat([Buffer.alloc(FILLER_SIZE), encodeHeader(FrameType.hello, nonce)]));
  await until('the host read ACK', () => contains(host, encodeHeader(FrameType.ack, nonce)));
  await host.write(encodeHeader(FrameType.open, nonce));
  await until('the guest accepted the Connection', () => accepted.length === 1);
  const connection = accepted[0] as Connection;
  let text = '';
  connection.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  return { host, connection, text: () => text };
}

describe('a hang-up while a Connection is open', { timeout: LIVENESS_MS * 2 }, () => {
  it('the port back within hangupGraceMs: the Connection goes on, nothing lost either way', async () => {
    const { port, listener, accepted } = setup({ hangupGraceMs: LONG_GRACE_MS });
    const nonce = 0x3344556677889900n;
    const { host, connection, text } = await connect(port, nonce, accepted);
    await host.write(Buffer.concat(encodeData(nonce, [Buffer.from('one ')])));
    await until('the Connection read "one "', () => text() === 'one ');

    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    expect(connection.destroyed).toBe(false); // not before the grace ran out
    let written = false;
    connection.write('pong', () => (written = true)); // the port refuses it until the host is back
    const back = port.reopen();
    await back.write(Buffer.concat(encodeData(nonce, [Buffer.from('two')])));
    await until('the Connection read "two"', () => text() === 'one two');
    await until('the host read DATA "pong"', () => contains(back, Buffer.concat(encodeData(nonce, [Buffer.from('pong')]))));
    expect(written).toBe(true);
    expect((listener as unknown as { graceTimer: unknown }).graceTimer).toBeUndefined(); // the return stopped it
    expect(connection.destroyed).toBe(false);
    expect(listener.hostAway).toBe(false);
  });

  it('the port still away after hangupGraceMs: the Connection is reset (ECONNRESET) and its waiting write dropped', async () => {
    const { port, listener, accepted } = setup({ reading: false, hangupGraceMs: 200 });
    const nonce = 0x4455667788990011n;
    const host = port.host as PtyHost;
    await host.write(Buffer.concat([Buffer.alloc(FILLER_SIZE), encodeHeader(FrameType.hello, nonce), encodeHeader(FrameType.open, nonce)]));
    await until('the guest accepted the Connection', () => accepted.length === 1);
    const connection = accepted[0] as Connection;
    let writeError: Error | null | undefined;
    connection.write(Buffer.alloc(1024 * 1024), (error) => (writeError = error)); // fills the port: the host end does not read
    const closed = new Promise((resolve) => connection.once('close', resolve));

    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    expect(connection.destroyed).toBe(false);
    await closed;
    expect(connection.errored).toMatchObject({ code: 'ECONNRESET', syscall: 'read' });
    expect(writeError).toMatchObject({ code: 'ECONNRESET', syscall: 'write' });
    expect(listener.hostAway).toBe(true);
  });

  it('a host that left in the middle of a record: the Connection ends at once, without the grace', async () => {
    const { port, listener, accepted } = setup({ hangupGraceMs: LONG_GRACE_MS });
    const nonce = 0x5566778899001122n;
    const { host, connection, text } = await connect(port, nonce, accepted);
    await host.write(Buffer.concat([encodeHeader(FrameType.data, nonce, 100), Buffer.alloc(50, 0x61)]));
    await until('the Connection read half the record', () => text().length === 50);
    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    expect(connection.destroyed).toBe(true);
    expect(connection.errored).toMatchObject({ code: 'ECONNRESET' });
  });

  it('a Connection that does not read (read-ahead full): it ends at once, so that reading goes on', async () => {
    const { port, listener, accepted } = setup({ hangupGraceMs: LONG_GRACE_MS });
    const nonce = 0x6677889900112233n;
    const { host, connection } = await connect(port, nonce, accepted);
    connection.removeAllListeners('data');
    connection.pause();
    // Not awaited: what the guest does not read ahead may stay in the host end's write.
    void host.write(Buffer.concat(encodeData(nonce, [Buffer.alloc(1024 * 1024 + 16 * 1024, 0x62)])));
    await until('the guest read 1 MiB ahead', () => connection.readableLength >= 1024 * 1024);
    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    expect(connection.destroyed).toBe(true);
    expect(connection.errored).toMatchObject({ code: 'ECONNRESET' });
  });

  it('hangupGraceMs 0: the Connection ends at the hang-up', async () => {
    const { port, listener, accepted } = setup({ hangupGraceMs: 0 });
    const { connection } = await connect(port, 0x7788990011223344n, accepted);
    port.hangUp();
    await until('the guest saw the hang-up', () => listener.hostAway);
    expect(connection.destroyed).toBe(true);
    expect(connection.errored).toMatchObject({ code: 'ECONNRESET' });
  });
});
