// src/vsock on this host: bind/listen/getsockname, errors with vsock addresses, the
// local-CID ioctl, fd adoption. No connects here (the host side is not ours).
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { closeSync, existsSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();
const { VMADDR_CID_ANY, VMADDR_PORT_ANY } = binding.vsockConstants;
const hasVsock = existsSync('/dev/vsock');

function listeningFd(): number {
  const fd = binding.vsockSocket('stream');
  binding.vsockBind(fd, VMADDR_CID_ANY, VMADDR_PORT_ANY);
  binding.vsockListen(fd, 16);
  return fd;
}

describe.runIf(hasVsock)('@vmlink/native vsock', () => {
  it('exports the vsock constants with their kernel values', () => {
    expect(binding.vsockConstants).toMatchObject({
      AF_VSOCK: 40,
      VMADDR_CID_ANY: 0xffffffff,
      VMADDR_CID_HYPERVISOR: 0,
      VMADDR_CID_LOCAL: 1,
      VMADDR_CID_HOST: 2,
      VMADDR_PORT_ANY: 0xffffffff,
      VMADDR_FLAG_TO_HOST: 1,
    });
  });

  it('reads the local CID with the ioctl on /dev/vsock (this machine is a guest: CID > 2)', () => {
    const cid = binding.vsockLocalCid();
    expect(Number.isInteger(cid)).toBe(true);
    expect(cid).toBeGreaterThan(2);
  });

  it('binds an ephemeral port and reports it through getsockname', () => {
    const fd = listeningFd();
    const { cid, port } = binding.vsockSockName(fd);
    expect(cid).toBe(VMADDR_CID_ANY);
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(VMADDR_PORT_ANY);
    expect(binding.vsockAdoptFd(fd)).toEqual({ vsock: true, type: 'stream', listening: true });
    closeSync(fd);
  });

  it('reports EADDRINUSE as a Node-shaped error with the vsock address', () => {
    const first = listeningFd();
    const { port } = binding.vsockSockName(first);
    const second = binding.vsockSocket('stream');
    let caught: unknown;
    try {
      binding.vsockBind(second, VMADDR_CID_ANY, port);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({
      code: 'EADDRINUSE',
      errno: -osConstants.errno.EADDRINUSE,
      syscall: 'bind',
      cid: VMADDR_CID_ANY,
      port,
      address: `vsock://${VMADDR_CID_ANY}:${port}`,
      message: `bind EADDRINUSE vsock://${VMADDR_CID_ANY}:${port}`,
    });
    closeSync(first);
    closeSync(second);
  });

  it('accepts nothing while idle, and a listener closes its fd exactly once', () => {
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 50; i++) {
      const listener = new binding.VsockListener(listeningFd(), { onConnection: () => {}, onError: () => {} });
      listener.start();
      listener.close();
      listener.close();
      expect(listener.fd).toBe(-1);
      expect(() => listener.start()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    }
    expect(readdirSync('/proc/self/fd').length).toBe(before);
  });

  it('probes socket types: stream and seqpacket exist, dgram is ENODEV on virtio', () => {
    expect(binding.vsockProbe('stream')).toBe(0);
    expect(binding.vsockProbe('seqpacket')).toBe(0);
    expect([0, osConstants.errno.ENODEV, osConstants.errno.EOPNOTSUPP]).toContain(binding.vsockProbe('dgram'));
    // @ts-expect-error: wrong type on purpose
    expect(() => binding.vsockSocket('raw')).toThrow(/'stream', 'seqpacket' or 'dgram'/);
  });

  it('adopting a non-vsock fd leaves it alone and says so', () => {
    const [a, b] = binding.socketpair('seqpacket');
    expect(binding.vsockAdoptFd(a)).toEqual({ vsock: false, type: 'seqpacket', listening: false });
    closeSync(a);
    closeSync(b);
    expect(() => binding.vsockAdoptFd(a)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'getsockopt' }));
  });

  it('guards arguments before any syscall', () => {
    expect(() => binding.vsockBind(-1, 1, 2)).toThrow(/fd must be an integer/);
    expect(() => binding.vsockBind(0, 2 ** 32, 2)).toThrow(/cid must be an integer in 0..4294967295/);
    // @ts-expect-error: wrong type on purpose
    expect(() => binding.vsockConnect(0, 1, '2', 0)).toThrow(/port must be a number/);
  });

  it('sets the connect timeout and the buffer size options', () => {
    const fd = binding.vsockSocket('stream');
    binding.vsockSetConnectTimeout(fd, 1500);
    binding.vsockSetBufferSize(fd, 1024 * 1024);
    expect(binding.vsockGetBufferSize(fd)).toBe(1024 * 1024);
    closeSync(fd);
  });
});
