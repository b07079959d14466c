// SEQPACKET through the device (opt-in `seqpacket: true`), driven by GuestDriverHarness (the
// QEMU + guest driver test double) with real AF_UNIX SOCK_SEQPACKET sockets on the host:
// message boundaries kept both ways, messages larger than one packet reassembled.
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadBinding } from '@vmlink/native';
import { GuestDriverHarness } from './harness/driver-harness.js';
import { TYPE_SEQPACKET } from './harness/vsock-header.js';

const binding = loadBinding();
const t = binding.vhostUserTestHelpers;
const dir = mkdtempSync(join(tmpdir(), 'vmlink-vuv-seq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const open: GuestDriverHarness[] = [];
const fds: number[] = [];
afterEach(async () => {
  for (const fd of fds.splice(0)) closeSync(fd);
  for (const h of open.splice(0)) await h.close();
});

async function harness(seqpacket: boolean): Promise<GuestDriverHarness> {
  const h = await GuestDriverHarness.create({ dir, name: `s${n++}`, guestCid: 3, seqpacket });
  open.push(h);
  h.setup();
  return h;
}

/** Records read from a non-blocking seqpacket fd while pumping, until `count` arrived. */
async function readRecords(h: GuestDriverHarness, fd: number, count: number): Promise<Buffer[]> {
  const records: Buffer[] = [];
  await h.until(() => {
    for (let r = t.recv(fd, 1 << 20); r !== null; r = records.length < count ? t.recv(fd, 1 << 20) : null) records.push(r);
    return records.length >= count;
  }, `${count} records`);
  return records;
}

describe('SEQPACKET', () => {
  it('guest -> host port P: the device connects a SOCK_SEQPACKET socket to ${udsPath}_P; boundaries kept both ways', async () => {
    const h = await harness(true);
    const listenFd = binding.unixListen(`${h.device.udsPath}_7100`, 16, 'seqpacket');
    fds.push(listenFd);
    const sock = h.connect(7100, TYPE_SEQPACKET);
    await h.until(() => sock.state === 'connected', 'RESPONSE');
    let hostFd: number | null = null;
    await h.until(() => (hostFd ??= t.accept(listenFd)) !== null, 'accept');
    fds.push(hostFd!);
    const sent = [Buffer.from('one'), randomBytes(20_000), Buffer.from('three')];
    for (const m of sent) h.write(sock, m);
    const got = await readRecords(h, hostFd!, 3);
    expect(got.map((b) => b.length)).toEqual(sent.map((b) => b.length));
    got.forEach((b, i) => expect(b.equals(sent[i]!)).toBe(true));

    const back = [randomBytes(30_000), Buffer.from('x')];
    for (const m of back) t.sendMessage(hostFd!, m);
    await h.until(() => sock.messages.length === 2, 'two messages in the guest');
    sock.messages.forEach((m, i) => expect(m.equals(back[i]!)).toBe(true));
    expect(h.device.stats().dropped.badType).toBe(0);
  });

  it('host -> guest: one record `CONNECT <port>\\n` on ${udsPath}.seqpacket, one record `OK <port>\\n` back, then messages', async () => {
    const h = await harness(true);
    h.listen(5100, TYPE_SEQPACKET);
    const fd = t.connectUnix(`${h.device.udsPath}.seqpacket`, 'seqpacket');
    fds.push(fd);
    t.sendMessage(fd, Buffer.from('CONNECT 5100\n'));
    const [ok] = await readRecords(h, fd, 1);
    expect(ok!.toString()).toBe('OK 5100\n');
    t.sendMessage(fd, Buffer.from('hello'));
    t.sendMessage(fd, Buffer.from('world'));
    const sock = [...h.sockets.values()][0]!;
    await h.until(() => sock.messages.length === 2, 'messages');
    expect(sock.messages.map(String)).toEqual(['hello', 'world']);
    h.write(sock, Buffer.from('reply'));
    expect((await readRecords(h, fd, 1)).map(String)).toEqual(['reply']);
  });

  it('a guest -> host seqpacket connect to a stream listener is reset; without seqpacket: true the type is refused', async () => {
    const h = await harness(true);
    fds.push(binding.unixListen(`${h.device.udsPath}_7200`, 16, 'stream'));
    const sock = h.connect(7200, TYPE_SEQPACKET);
    await h.until(() => sock.state === 'reset', 'RST (EPROTOTYPE)');
    expect(h.device.stats().hostConnectFailed).toBe(1);

    const plain = await harness(false);
    const refused = plain.connect(7200, TYPE_SEQPACKET);
    await plain.until(() => refused.state === 'reset', 'RST');
    expect(plain.device.stats().dropped.badType).toBe(1);
    expect(plain.device.seqpacketPath).toBeUndefined();
  });
});
