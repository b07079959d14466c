// @vmlink/vsock on this host: validation, error shapes, listening, fd adoption, leaks.
// This machine is a guest whose host side is not ours: NOTHING here connects anywhere.
// Traffic tests run inside a QEMU guest (vsock.vm.test.ts).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, fstatSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';

import { describe, expect, it } from 'vitest';

import {
  VMADDR_CID_ANY,
  VMADDR_PORT_ANY,
  VsockSeqpacketSocket,
  VsockSocket,
  connect,
  connectSeqpacket,
  createDatagramSocket,
  createSeqpacketServer,
  createServer,
  isDatagramSupported,
  isSupported,
  localCid,
  type VsockServer,
} from '../src/index.js';

const require = createRequire(import.meta.url);
const binding = (require('@vmlink/native') as typeof import('@vmlink/native')).loadBinding();

const openFds = () => readdirSync('/proc/self/fd').length;
const coded = (code: string, message?: RegExp) => expect.objectContaining({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });

async function listening<T extends 'stream' | 'seqpacket'>(server: VsockServer<T>, options = {}): Promise<{ cid: number; port: number }> {
  server.listen(options);
  await once(server, 'listening');
  const address = server.address();
  if (address === null) throw new Error('no address after listening');
  return address;
}

function closed(server: VsockServer<'stream' | 'seqpacket'>): Promise<Error | undefined> {
  return new Promise((resolve) => server.close(resolve));
}

/** A bound, not yet listening AF_VSOCK fd, as a service manager would pass it. */
function boundFd(type: 'stream' | 'seqpacket' = 'stream'): number {
  const fd = binding.vsockSocket(type);
  binding.vsockBind(fd, VMADDR_CID_ANY, VMADDR_PORT_ANY);
  return fd;
}

describe('argument validation (no socket is created)', () => {
  it.each([
    [{ cid: '1', port: 1 }, 'ERR_INVALID_ARG_TYPE', /"options\.cid" argument must be of type number\. Received type string \('1'\)/],
    [{ cid: -1, port: 1 }, 'ERR_OUT_OF_RANGE', /"options\.cid" is out of range.*Received -1/],
    [{ cid: 2 ** 32, port: 1 }, 'ERR_OUT_OF_RANGE', /Received 4294967296/],
    [{ cid: 1.5, port: 1 }, 'ERR_OUT_OF_RANGE', /Received 1\.5/],
    [{ cid: 1 }, 'ERR_INVALID_ARG_TYPE', /"options\.port".*Received undefined/],
    [{ cid: 1, port: 2 ** 32 }, 'ERR_OUT_OF_RANGE', /"options\.port" is out of range/],
    [{ cid: 1, port: 1, timeout: 0 }, 'ERR_OUT_OF_RANGE', /"options\.timeout"/],
    [{ cid: 1, port: 1, toHost: 'yes' }, 'ERR_INVALID_ARG_TYPE', /"options\.toHost"/],
    [{ cid: 1, port: 1, signal: {} }, 'ERR_INVALID_ARG_TYPE', /"options\.signal"/],
  ])('connect(%o) throws %s', (options, code, message) => {
    const before = openFds();
    expect(() => connect(options as never)).toThrow(coded(code, message));
    expect(() => connectSeqpacket(options as never)).toThrow(coded(code, message));
    expect(openFds()).toBe(before);
  });

  it('rejects non-object options and bad socket options', () => {
    expect(() => connect(null as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /Received null/));
    expect(() => new VsockSocket({ allowHalfOpen: 1 } as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /allowHalfOpen/));
    expect(() => new VsockSeqpacketSocket({ maxMessageSize: 0 })).toThrow(coded('ERR_OUT_OF_RANGE', /maxMessageSize/));
    expect(() => new VsockSocket().setTimeout(-1)).toThrow(coded('ERR_OUT_OF_RANGE', /"ms"/));
    expect(() => createServer({ pauseOnConnect: 'no' } as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /pauseOnConnect/));
  });

  it('rejects bad listen options synchronously', () => {
    const server = createServer();
    expect(() => server.listen({ port: -5 })).toThrow(coded('ERR_OUT_OF_RANGE', /"options\.port".*Received -5/));
    expect(() => server.listen({ cid: 'any' } as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /"options\.cid"/));
    expect(() => server.listen({ backlog: 1e6 })).toThrow(coded('ERR_OUT_OF_RANGE', /backlog/));
    expect(() => server.listen({ fd: -1 })).toThrow(coded('ERR_OUT_OF_RANGE', /"options\.fd"/));
    expect(server.listening).toBe(false);
  });

  it('a pre-aborted signal gives AbortError (ABORT_ERR) and close(hadError) without creating a socket', async () => {
    const before = openFds();
    const socket = connect({ cid: 1, port: 1234, signal: AbortSignal.abort() });
    const closing = new Promise<[boolean]>((resolve) => socket.once('close', (hadError: boolean) => resolve([hadError])));
    const [error] = await once(socket, 'error');
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    const [hadError] = await closing;
    expect(hadError).toBe(true);
    expect(socket.destroyed).toBe(true);
    expect(openFds()).toBe(before);
    expect(() => socket.connect({ cid: 1, port: 1234 })).toThrow(coded('ERR_SOCKET_CLOSED'));

    const seq = connectSeqpacket({ cid: 1, port: 1234, signal: AbortSignal.abort() });
    const [seqError] = await once(seq, 'error');
    expect(seqError).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('send() on a SEQPACKET socket checks its message', () => {
    const socket = new VsockSeqpacketSocket();
    expect(() => socket.send('text' as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /"message"/));
    expect(() => socket.send(Buffer.alloc(0))).toThrow(coded('ERR_OUT_OF_RANGE', /empty message/));
    socket.destroy();
    expect(() => socket.send(Buffer.from('x'))).toThrow(coded('ERR_SOCKET_CLOSED'));
  });
});

// CID 1 is the one address this host may dial: it has no loopback transport, so the
// connect hangs until a timeout, which is exactly what these two tests need.
describe('connect timeout and mid-connect abort (CID 1 never answers on this host)', () => {
  it('timeout: ETIMEDOUT naming the address; the fd is closed', async () => {
    const before = openFds();
    const socket = connect({ cid: 1, port: 5555, timeout: 200 });
    const closing = new Promise<boolean>((resolve) => socket.once('close', resolve));
    const [error] = await once(socket, 'error');
    expect(error).toMatchObject({
      code: 'ETIMEDOUT',
      errno: -constants.errno.ETIMEDOUT,
      syscall: 'connect',
      cid: 1,
      port: 5555,
      message: 'connect ETIMEDOUT vsock://1:5555',
    });
    expect(await closing).toBe(true);
    expect(openFds()).toBe(before);
  });

  it('an AbortSignal aborted while connecting: AbortError, the fd is closed', async () => {
    const before = openFds();
    const controller = new AbortController();
    const socket = connect({ cid: 1, port: 5556, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(socket.connecting).toBe(true);
    expect(openFds()).toBe(before + 1);
    const errored = once(socket, 'error');
    controller.abort();
    const [error] = await errored;
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(socket.fd).toBe(-1);
    expect(openFds()).toBe(before);
  });
});

describe('servers on this host', () => {
  it('listens on an ephemeral port and reports it through address()', async () => {
    const server = createServer();
    expect(server.address()).toBeNull();
    const address = await listening(server);
    expect(address.cid).toBe(VMADDR_CID_ANY);
    expect(Number.isInteger(address.port)).toBe(true);
    expect(address.port).not.toBe(VMADDR_PORT_ANY);
    expect(server.listening).toBe(true);
    expect(await closed(server)).toBeUndefined();
    expect(server.address()).toBeNull();
  });

  it('listen(port, cb) form, listen twice throws, close twice reports ERR_SERVER_NOT_RUNNING', async () => {
    const server = createServer();
    const first = await listening(server);
    await closed(server);
    const again = createServer();
    const ready = new Promise<void>((resolve) => again.listen(first.port, resolve));
    await ready;
    expect(again.address()?.port).toBe(first.port);
    expect(() => again.listen()).toThrow(coded('ERR_SERVER_ALREADY_LISTEN'));
    expect(await closed(again)).toBeUndefined();
    expect(await closed(again)).toMatchObject({ code: 'ERR_SERVER_NOT_RUNNING' });
  });

  it('a port in use is an EADDRINUSE error event with the vsock address, and the server can listen again', async () => {
    const holder = createServer();
    const { port } = await listening(holder);
    const server = createServer();
    server.listen({ port });
    const [error] = await once(server, 'error');
    expect(error).toMatchObject({
      code: 'EADDRINUSE',
      errno: -constants.errno.EADDRINUSE,
      syscall: 'bind',
      cid: VMADDR_CID_ANY,
      port,
      message: `bind EADDRINUSE vsock://${VMADDR_CID_ANY}:${port}`,
    });
    expect(server.listening).toBe(false);
    await listening(server);
    await closed(server);
    await closed(holder);
  });

  it('a SEQPACKET server listens too', async () => {
    const server = createSeqpacketServer(() => {});
    const address = await listening(server);
    expect(address.port).not.toBe(VMADDR_PORT_ANY);
    await closed(server);
  });

  it('an aborted signal closes the server', async () => {
    const controller = new AbortController();
    const server = createServer();
    await listening(server, { signal: controller.signal });
    const closing = once(server, 'close');
    controller.abort();
    await closing;
    expect(server.listening).toBe(false);
  });

  it('await using: Symbol.asyncDispose closes the server', async () => {
    const server = createServer();
    await listening(server);
    await server[Symbol.asyncDispose]();
    expect(server.listening).toBe(false);
  });

  it('leaves the fd count unchanged after 100 listen/close cycles', async () => {
    const before = openFds();
    for (let i = 0; i < 100; i++) {
      const server = createServer();
      await listening(server);
      await closed(server);
    }
    expect(openFds()).toBe(before);
  });

  it('an unref()ed listening server lets the process exit', async () => {
    const script = `
      import { createServer } from '@vmlink/vsock';
      const server = createServer(() => {});
      server.listen({}, () => { console.log(server.address().port); server.unref(); });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(Number(output.trim())).toBeGreaterThan(0);
  });
});

describe('adopting fds (systemd socket activation, inherited sockets)', () => {
  it('listen({ fd }) takes a bound socket, listens on it, and closes it on close()', async () => {
    const fd = boundFd();
    const { port } = binding.vsockSockName(fd);
    const server = createServer();
    const address = await listening(server, { fd });
    expect(address.port).toBe(port);
    await closed(server);
    expect(() => fstatSync(fd)).toThrow(coded('EBADF'));
  });

  it('listen({ fd }) takes an already listening socket', async () => {
    const fd = boundFd('seqpacket');
    binding.vsockListen(fd, 8);
    const server = createSeqpacketServer();
    await listening(server, { fd });
    await closed(server);
  });

  it('listen({ fd }) refuses a foreign or mismatched fd with ERR_INVALID_FD_TYPE and leaves it open', () => {
    const [a, b] = binding.socketpair('stream');
    expect(() => createServer().listen({ fd: a })).toThrow(coded('ERR_INVALID_FD_TYPE', /fd \d+ is not an AF_VSOCK socket/));
    const seq = boundFd('seqpacket');
    expect(() => createServer().listen({ fd: seq })).toThrow(coded('ERR_INVALID_FD_TYPE', /is a seqpacket socket, this server takes stream sockets/));
    for (const fd of [a, b, seq]) {
      expect(fstatSync(fd).isSocket()).toBe(true);
      closeSync(fd);
    }
  });

  it('VsockSocket.fromFd refuses non-vsock, listening and unconnected sockets, leaving them open', () => {
    const [a, b] = binding.socketpair('stream');
    expect(() => VsockSocket.fromFd(a)).toThrow(coded('ERR_INVALID_FD_TYPE', /is not an AF_VSOCK socket/));
    const listeningFd = boundFd();
    binding.vsockListen(listeningFd, 1);
    expect(() => VsockSocket.fromFd(listeningFd)).toThrow(coded('ERR_INVALID_FD_TYPE', /listening socket/));
    const seq = binding.vsockSocket('seqpacket');
    expect(() => VsockSocket.fromFd(seq)).toThrow(coded('ERR_INVALID_FD_TYPE', /seqpacket socket, not a stream socket/));
    expect(() => VsockSeqpacketSocket.fromFd(listeningFd)).toThrow(coded('ERR_INVALID_FD_TYPE'));
    const unconnected = binding.vsockSocket('stream');
    expect(() => VsockSocket.fromFd(unconnected)).toThrow(coded('ENOTCONN', /getpeername ENOTCONN/));
    expect(() => VsockSocket.fromFd(-3)).toThrow(coded('ERR_OUT_OF_RANGE'));
    for (const fd of [a, b, listeningFd, seq, unconnected]) {
      expect(fstatSync(fd).isSocket()).toBe(true);
      closeSync(fd);
    }
  });
});

describe('capabilities', () => {
  it('localCid() is this guest CID (an integer > 2), the same as the ioctl reports', () => {
    const cid = localCid();
    expect(Number.isInteger(cid)).toBe(true);
    expect(cid).toBeGreaterThan(2);
    expect(cid).toBe(binding.vsockLocalCid());
  });

  it('isSupported() is true here; datagrams follow the kernel probe', () => {
    expect(isSupported()).toBe(true);
    const dgramErrno = binding.vsockProbe('dgram');
    expect(isDatagramSupported()).toBe(dgramErrno === 0);
    if (dgramErrno !== 0) {
      expect(() => createDatagramSocket()).toThrow(
        expect.objectContaining({ code: binding.errnoName(dgramErrno), errno: -dgramErrno, syscall: 'socket' }),
      );
      expect(['ENODEV', 'EOPNOTSUPP', 'ESOCKTNOSUPPORT']).toContain(binding.errnoName(dgramErrno));
    }
  });
});

describe('off Linux (platform injected)', () => {
  it('importing works; every call throws ERR_VMLINK_UNSUPPORTED_PLATFORM; isSupported() is false', () => {
    const real = Object.getOwnPropertyDescriptor(process, 'platform');
    if (real === undefined) throw new Error('process.platform has no descriptor');
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try {
      const unsupported = coded('ERR_VMLINK_UNSUPPORTED_PLATFORM', /this platform is 'darwin'/);
      expect(() => localCid()).toThrow(unsupported);
      expect(() => createServer()).toThrow(unsupported);
      expect(() => createSeqpacketServer()).toThrow(unsupported);
      expect(() => connect({ cid: 1, port: 1 })).toThrow(unsupported);
      expect(() => connectSeqpacket({ cid: 1, port: 1 })).toThrow(unsupported);
      expect(() => new VsockSocket()).toThrow(unsupported);
      expect(() => VsockSocket.fromFd(3)).toThrow(unsupported);
      expect(() => createDatagramSocket()).toThrow(unsupported);
      expect(isSupported()).toBe(false);
      expect(isDatagramSupported()).toBe(false);
    } finally {
      Object.defineProperty(process, 'platform', real);
    }
  });
});
