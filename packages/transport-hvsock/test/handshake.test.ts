import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hvsock, type HvsockConnection } from '@vmlink/transport-hvsock';
import { ScriptedVmmSocket, type Step } from './firecracker-responder.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-hvsock-handshake-'));
let counter = 0;
const transport = hvsock();
let vmm: ScriptedVmmSocket | undefined;

afterEach(async () => {
  await vmm?.close();
  vmm = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function vmmReplying(steps: Step[]): Promise<ScriptedVmmSocket> {
  vmm = await ScriptedVmmSocket.start(join(dir, `v${counter++}.sock`), steps);
  return vmm;
}

async function readAll(connection: HvsockConnection): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of connection) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}

describe('hybrid vsock dial: the CONNECT/OK handshake against a scripted VMM (Firecracker behaviour)', () => {
  it("sends 'CONNECT <port>\\n' and takes Firecracker's host port >= 2^30 from 'OK <n>'", async () => {
    const v = await vmmReplying([{ write: 'OK 1073741824\n' }, { write: 'from guest' }, { end: true }]);
    const connection = (await transport.dial(`hvsock:${v.path}:52`)) as HvsockConnection;
    expect(v.commands).toEqual(['CONNECT 52\n']);
    expect(connection.hostPort).toBe(2 ** 30);
    expect(connection.remoteAddress).toBe(`hvsock:${v.path}:52`);
    expect(connection.localAddress).toBe('hvsock:');
    expect(connection.peer).toEqual({ uid: process.getuid!(), gid: process.getgid!(), pid: process.pid });
    expect(await readAll(connection)).toBe('from guest');
    connection.end();
  });

  it('the largest port is sent in decimal and an echoed guest port (vhost-device-vsock) is accepted', async () => {
    const v = await vmmReplying([{ write: 'OK 4294967295\n' }, { end: true }]);
    const connection = (await transport.dial(`hvsock:${v.path}:4294967295`)) as HvsockConnection;
    expect(v.commands).toEqual(['CONNECT 4294967295\n']);
    expect(connection.hostPort).toBe(4294967295);
    connection.destroy();
  });

  it('an OK split over several reads is put together', async () => {
    const v = await vmmReplying([{ write: 'O' }, { settle: true }, { write: 'K 10737' }, { settle: true }, { write: '41825\n' }, { settle: true }, { write: 'x' }, { end: true }]);
    const connection = (await transport.dial(`hvsock:${v.path}:1`)) as HvsockConnection;
    expect(connection.hostPort).toBe(2 ** 30 + 1);
    expect(await readAll(connection)).toBe('x');
    connection.end();
  });

  it('data right after OK in the same segment is the first data of the Connection, not lost or eaten', async () => {
    const payload = Buffer.alloc(100_000, 0x61);
    payload.write('\nOK 7\nstill data\n', 10); // newlines and an OK look-alike inside the data
    const v = await vmmReplying([{ write: Buffer.concat([Buffer.from('OK 1073741826\n'), payload]) }, { end: true }]);
    const connection = (await transport.dial(`hvsock:${v.path}:2`)) as HvsockConnection;
    expect(connection.hostPort).toBe(2 ** 30 + 2);
    expect(await readAll(connection)).toBe(payload.toString('latin1'));
    connection.end();
  });

  it("the keyword is matched in any case ('ok', 'Ok') and a CR before the newline is allowed", async () => {
    const v = await vmmReplying([{ write: 'ok 5\r\n' }, { end: true }]);
    const connection = (await transport.dial(`hvsock:${v.path}:5`)) as HvsockConnection;
    expect(connection.hostPort).toBe(5);
    connection.destroy();
    await vmm?.close();
    const w = await vmmReplying([{ write: 'Ok 6\n' }, { end: true }]);
    const other = (await transport.dial(`hvsock:${w.path}:6`)) as HvsockConnection;
    expect(other.hostPort).toBe(6);
    other.destroy();
  });

  it.each([
    ['closed with no reply (destroy)', [{ destroy: true }] as Step[], 'no reply'],
    ['closed with no reply (FIN)', [{ end: true }] as Step[], 'no reply'],
    ['a reply without newline, then close', [{ write: 'OK 5' }, { end: true }] as Step[], 'only "OK 5"'],
  ])('%s: ECONNREFUSED naming the address', async (_, steps, detail) => {
    const v = await vmmReplying(steps);
    const uri = `hvsock:${v.path}:1024`;
    await expect(transport.dial(uri)).rejects.toMatchObject({
      code: 'ECONNREFUSED',
      syscall: 'connect',
      address: uri,
      port: 1024,
      message: expect.stringContaining(detail),
    });
    expect(((await transport.dial(uri).catch((e: unknown) => e)) as Error).message).toContain(uri);
  });

  it.each([
    ['an over-long line (no newline in 64 bytes)', [{ write: 'OK ' + '1'.repeat(80) }], 'no newline within 64 bytes'],
    ['a megabyte with no newline', [{ write: Buffer.alloc(1024 * 1024, 0x41) }], 'no newline within 64 bytes'],
    ['a reply that is not OK', [{ write: 'NOPE 5\n' }], "expected 'OK <port>', got \"NOPE 5\""],
    ['OK with no number', [{ write: 'OK\n' }], "expected 'OK <port>'"],
    ['OK with a signed number', [{ write: 'OK -5\n' }], "expected 'OK <port>'"],
    ['OK with a number beyond u32', [{ write: 'OK 4294967296\n' }], 'larger than 4294967295'],
  ])('%s: ERR_VMLINK_HVSOCK_BAD_REPLY, and the socket is closed', async (_, steps, detail) => {
    const v = await vmmReplying(steps as Step[]);
    const uri = `hvsock:${v.path}:9`;
    await expect(transport.dial(uri)).rejects.toMatchObject({ code: 'ERR_VMLINK_HVSOCK_BAD_REPLY', message: expect.stringContaining(detail) });
    await v.allClosed(); // the VMM keeps its end open: only our destroy() closes it
  });

  it('a VMM that never answers (Firecracker queues while the guest driver is down): timeout gives ETIMEDOUT, abort gives AbortError', async () => {
    const v = await vmmReplying([]);
    const uri = `hvsock:${v.path}:3`;
    await expect(transport.dial(uri, { timeout: 200 })).rejects.toMatchObject({ code: 'ETIMEDOUT', syscall: 'connect', address: uri });
    const controller = new AbortController();
    const dialing = transport.dial(uri, { signal: controller.signal });
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await expect(dialing).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    await expect(transport.dial(uri, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORT_ERR' });
    await v.allClosed(); // neither the timed-out nor the aborted socket stays open
    expect(v.commands).toEqual(['CONNECT 3\n', 'CONNECT 3\n']);
  });

  it('no VMM socket at the path: ENOENT from connect', async () => {
    await expect(transport.dial(`hvsock:${join(dir, 'nobody.sock')}:1`)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'connect' });
  });
});
