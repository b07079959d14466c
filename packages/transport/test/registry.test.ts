import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTransports, type Transport } from '@vmlink/transport';
import { unix } from '@vmlink/transport-unix';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in transport for pure registry logic (never dials anything). */
function fakeTransport(name: string, schemes: string[], listen = true): Transport {
  return {
    name,
    schemes,
    capabilities: { multiConnection: true, halfClose: false, messageBoundaries: false, listen },
    parse: (uri) => ({ scheme: schemes[0] ?? '', uri }),
    dial: () => Promise.reject(new Error('fake: no dialing')),
    listen: () => Promise.reject(new Error('fake: no listening')),
  };
}

describe('createTransports', () => {
  it('routes dial and listen by scheme (case-insensitive) to a real transport', async () => {
    const transports = createTransports([fakeTransport('other', ['other']), unix()]);
    const path = join(dir, 'r.sock');
    await using listener = await transports.listen(`unix:${path}`);
    const accepted = new Promise((resolve) => listener.once('connection', resolve));
    const connection = await transports.dial(`UNIX:${path}`);
    await accepted;
    expect(connection.transport.name).toBe('unix');
    expect(connection.remoteAddress).toBe(`unix:${path}`);
    connection.destroy();
  });

  it('resolve() names the transport and gives the parsed address', () => {
    const transports = createTransports([unix()]);
    const { transport, address } = transports.resolve('unix:/tmp/x.sock');
    expect(transport.name).toBe('unix');
    expect(address).toMatchObject({ scheme: 'unix', uri: 'unix:/tmp/x.sock', path: '/tmp/x.sock' });
    expect(transports.get('UNIX')).toBe(transport);
    expect(transports.get('vsock')).toBeUndefined();
  });

  it('unknown schemes fail with ERR_VMLINK_INVALID_ADDRESS naming the input and the known schemes', async () => {
    const transports = createTransports([unix()]);
    await expect(transports.dial('vsock://3:1024')).rejects.toMatchObject({
      code: 'ERR_VMLINK_INVALID_ADDRESS',
      message: "Invalid address 'vsock://3:1024': no transport handles scheme 'vsock:' (known: 'unix:')",
    });
    await expect(transports.listen('not a uri')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining("'not a uri'") });
  });

  it("malformed URIs of a known scheme fail with the plugin's reason", async () => {
    const transports = createTransports([unix()]);
    await expect(transports.dial('unix:')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: "Invalid address 'unix:': the path is empty" });
  });

  it('listen on a dial-only transport fails with ERR_VMLINK_UNSUPPORTED_OPERATION', async () => {
    const transports = createTransports([fakeTransport('dialonly', ['dialonly'], false)]);
    await expect(transports.listen('dialonly:x')).rejects.toMatchObject({ code: 'ERR_VMLINK_UNSUPPORTED_OPERATION' });
  });

  it('two transports claiming one scheme is an error', () => {
    expect(() => createTransports([unix(), fakeTransport('mine', ['unix'])])).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_DUPLICATE_SCHEME', message: "Scheme 'unix:' is claimed by both 'unix' and 'mine'" }),
    );
  });

  it('rejects things that are not transports, naming the index', () => {
    expect(() => createTransports([unix(), {} as Transport])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('transports[1]') }));
    expect(() => createTransports([fakeTransport('bad', ['Upper'])])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => createTransports('unix' as unknown as Transport[])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
