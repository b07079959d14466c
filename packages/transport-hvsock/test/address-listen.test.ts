import { once } from 'node:events';
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTransports, loadInstalledTransports, type Connection } from '@vmlink/transport';
import { hvsock, parseHvsockAddress } from '@vmlink/transport-hvsock';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-hvsock-listen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const freshUds = (): string => join(dir, `v${counter++}.sock`);
const transport = hvsock();

describe('hvsock: addresses', () => {
  it.each([
    ['hvsock:/run/fc/v.sock:52', '/run/fc/v.sock', 52],
    ['HVSOCK:/tmp/v.sock:0', '/tmp/v.sock', 0],
    ['hvsock:/tmp/a:b/v.sock:4294967295', '/tmp/a:b/v.sock', 4294967295], // the port follows the LAST ':'
    ['hvsock:relative.sock:1024', 'relative.sock', 1024],
  ])('%s -> path %s port %i', (input, path, port) => {
    const address = parseHvsockAddress(input);
    expect(address).toEqual({ scheme: 'hvsock', uri: `hvsock:${path}:${port}`, path, port });
    expect(parseHvsockAddress(address.uri)).toEqual(address);
  });

  it.each([
    ['hvsock:/tmp/v.sock', 'no port after a colon'],
    ['hvsock:/tmp/v.sock:', "port '' is not a decimal integer"],
    ['hvsock:/tmp/v.sock:x', "port 'x' is not a decimal integer"],
    ['hvsock:/tmp/v.sock:01', "port '01' is not a decimal integer"],
    ['hvsock:/tmp/v.sock:4294967296', 'port 4294967296 is out of range'],
    ['hvsock::52', 'the path is empty'],
    ['hvsock://host/v.sock:52', "no '//' authority part"],
    ['hvsock:@abstract:52', 'abstract socket names'],
    ['hvsock:/tmp/a\0b:52', 'NUL byte'],
    [`hvsock:/${'x'.repeat(107)}:52`, 'holds at most 107'],
    ['unix:/tmp/v.sock:52', "scheme 'unix:' is not one of 'hvsock:'"],
  ])('%s is ERR_VMLINK_INVALID_ADDRESS (%s)', (input, reason) => {
    expect(() => parseHvsockAddress(input)).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining(reason) }),
    );
  });

  it('declares its name, scheme and capabilities', () => {
    expect(transport.name).toBe('hvsock');
    expect(transport.schemes).toEqual(['hvsock']);
    expect(transport.capabilities).toEqual({ multiConnection: true, halfClose: true, messageBoundaries: false, listen: true });
  });

  it('loadInstalledTransports() routes hvsock: URIs (the apps take any URI)', async () => {
    const { transports, failures } = await loadInstalledTransports();
    expect(failures.map((f) => f.plugin)).not.toContain('@vmlink/transport-hvsock');
    expect(transports.resolve('hvsock:/run/v.sock:52').transport.name).toBe('hvsock');
    expect(createTransports([transport]).resolve('hvsock:/x:1').address).toMatchObject({ path: '/x', port: 1 });
  });
});

describe('hvsock: listen on <uds_path>_<PORT> (guest-initiated connections)', () => {
  it('binds <path>_<PORT> with mode 0600 and takes what the VMM connects there, with the VMM process as peer', async () => {
    const uds = freshUds();
    await using listener = await transport.listen(`hvsock:${uds}:1024`);
    expect(listener.address()).toBe(`hvsock:${uds}:1024`);
    expect(lstatSync(`${uds}_1024`).isSocket()).toBe(true);
    expect(lstatSync(`${uds}_1024`).mode & 0o777).toBe(0o600);
    const accepted = once(listener, 'connection') as Promise<[Connection]>;
    // What the VMM does for a guest connect to (CID 2, port 1024): connect, no handshake.
    const vmm = createConnection({ path: `${uds}_1024` });
    vmm.write('guest bytes');
    const [connection] = await accepted;
    expect(connection.localAddress).toBe(`hvsock:${uds}:1024`);
    expect(connection.remoteAddress).toBe('hvsock:');
    expect(connection.peer).toEqual({ uid: process.getuid!(), gid: process.getgid!(), pid: process.pid });
    const [chunk] = (await once(connection, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('guest bytes');
    vmm.destroy();
    connection.destroy();
  });

  it('reclaims a stale <path>_<PORT> by default, but never a live one or a regular file', async () => {
    const uds = freshUds();
    // Stale: a socket inode left under the name with nothing listening on it.
    const holder = createServer().listen(`${uds}_7`);
    await once(holder, 'listening');
    const { linkSync } = await import('node:fs');
    linkSync(`${uds}_7`, `${uds}_8`); // _8 is the same socket: live while holder listens
    await expect(transport.listen(`hvsock:${uds}:8`)).rejects.toMatchObject({ code: 'EADDRINUSE', message: expect.stringContaining('a server answers on it') });
    holder.close(); // _7 is removed, _8 stays behind: stale
    await once(holder, 'close');
    expect(lstatSync(`${uds}_8`).isSocket()).toBe(true);
    await using listener = await transport.listen(`hvsock:${uds}:8`);
    expect(listener.address()).toBe(`hvsock:${uds}:8`);

    writeFileSync(`${uds}_9`, 'keep me');
    await expect(transport.listen(`hvsock:${uds}:9`)).rejects.toMatchObject({ code: 'ENOTSOCK' });
    expect(readFileSync(`${uds}_9`, 'utf8')).toBe('keep me');
  });

  it('hvsock({ reclaimStale: false }) leaves a stale socket alone (EADDRINUSE); options.mode widens the file', async () => {
    const uds = freshUds();
    const holder = createServer().listen(`${uds}_1`);
    await once(holder, 'listening');
    const { linkSync } = await import('node:fs');
    linkSync(`${uds}_1`, `${uds}_2`);
    holder.close();
    await expect(hvsock({ reclaimStale: false }).listen(`hvsock:${uds}:2`)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await using _listener = await transport.listen(`hvsock:${uds}:3`, { mode: 0o660 });
    expect(lstatSync(`${uds}_3`).mode & 0o777).toBe(0o660);
  });

  it('a listen path over the sun_path limit is ERR_VMLINK_INVALID_ADDRESS naming it', async () => {
    const uds = join(dir, 'x'.repeat(106 - dir.length - 1));
    expect(Buffer.byteLength(uds)).toBe(106);
    await expect(transport.listen(`hvsock:${uds}:52`)).rejects.toMatchObject({
      code: 'ERR_VMLINK_INVALID_ADDRESS',
      message: expect.stringContaining(`${uds}_52`),
    });
  });

  it('bad listen options are typed errors', async () => {
    await expect(transport.listen(`hvsock:${freshUds()}:1`, { mode: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(transport.listen(`hvsock:${freshUds()}:1`, { backlog: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(() => hvsock({ mode: '0600' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
