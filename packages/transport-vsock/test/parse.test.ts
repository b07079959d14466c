import { describe, expect, it } from 'vitest';
import { createTransports } from '@vmlink/transport';
import { vsock, parseVsockAddress, CID_ANY, PORT_ANY } from '@vmlink/transport-vsock';

// Host-side tests: parsing, validation and listen/close only. This machine never dials a
// vsock CID (its CID 2 is not ours; CID 1 has no loopback here): dials are in the guest.
describe('vsock:// addresses', () => {
  it.each([
    ['vsock://3:1024', 3, 1024, 'vsock://3:1024'],
    ['vsock://host:1024', 2, 1024, 'vsock://2:1024'],
    ['vsock://local:5', 1, 5, 'vsock://1:5'],
    ['vsock://any:1024', CID_ANY, 1024, 'vsock://any:1024'],
    ['vsock://any:any', CID_ANY, PORT_ANY, 'vsock://any:any'],
    ['VSOCK://4294967295:0', CID_ANY, 0, 'vsock://any:0'],
  ])('%s -> cid %i port %i (%s)', (input, cid, port, uri) => {
    expect(parseVsockAddress(input)).toEqual({ scheme: 'vsock', cid, port, uri });
  });

  it.each([
    ['vsock://', 'expected vsock://CID:PORT'],
    ['vsock:3:1024', 'expected vsock://CID:PORT'],
    ['vsock://3', 'expected vsock://CID:PORT'],
    ['vsock://3:1024/path', 'expected vsock://CID:PORT'],
    ['vsock://guest:1', "CID 'guest' is not a decimal integer"],
    ['vsock://-1:1', "CID '-1' is not a decimal integer"],
    ['vsock://3:65536x', "port '65536x' is not a decimal integer"],
    ['vsock://4294967296:1', 'CID 4294967296 is out of range'],
    ['vsock://3:4294967296', 'port 4294967296 is out of range'],
    ['vsock://3: 1', "port ' 1' is not a decimal integer"],
    ['unix:/x', "scheme 'unix:' is not one of 'vsock:'"],
  ])('%s is ERR_VMLINK_INVALID_ADDRESS (%s)', (input, reason) => {
    expect(() => parseVsockAddress(input)).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining(`'${input}'`) }),
    );
    expect(() => parseVsockAddress(input)).toThrow(expect.objectContaining({ message: expect.stringContaining(reason) }));
  });
});

describe('vsock() transport on the host', () => {
  const transport = vsock();

  it('declares its name, scheme and capabilities', () => {
    expect(transport.name).toBe('vsock');
    expect(transport.schemes).toEqual(['vsock']);
    expect(transport.capabilities).toEqual({ multiConnection: true, halfClose: true, messageBoundaries: false, listen: true });
  });

  it("refuses to dial 'any' (CID or port) before touching a socket", async () => {
    await expect(transport.dial('vsock://any:1024')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining("cannot dial CID 'any'") });
    await expect(transport.dial('vsock://1:any')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining("cannot dial port 'any'") });
    await expect(transport.dial('vsock://x:1')).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_ADDRESS' });
  });

  it('bad dial options reject with typed errors (no socket is made)', async () => {
    await expect(transport.dial('vsock://1:1024', { timeout: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(transport.dial('vsock://1:1024', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('listens on any:any (bind + listen only), reports the chosen port, closes twice safely', async () => {
    const listener = await transport.listen('vsock://any:any');
    const address = transport.parse(listener.address());
    expect(address.cid).toBe(CID_ANY);
    expect(address.port).not.toBe(PORT_ANY);
    await listener.close();
    await listener.close();
    expect(listener.closed).toBe(true);
  });

  it('a second listener on the same port fails with EADDRINUSE', async () => {
    await using first = await transport.listen('vsock://any:any');
    await expect(transport.listen(first.address())).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('createTransports routes vsock:// to it', () => {
    expect(createTransports([transport]).resolve('vsock://host:1024').address).toMatchObject({ cid: 2, port: 1024 });
  });
});
