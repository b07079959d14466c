import { createServer, connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBinding } from '../index.cjs';

const binding = loadBinding();
const dir = mkdtempSync(path.join(tmpdir(), 'vmlink-socket-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The fd behind a net.Socket of a Unix connection (libuv's pipe handle). */
function fdOf(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

describe('peerCredentials (SO_PEERCRED) on real Unix sockets', () => {
  it('reports the connecting process on the accepted socket', async () => {
    const socketPath = path.join(dir, 'peer.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = connect(socketPath);
    const peer = await accepted;
    try {
      expect(binding.peerCredentials(fdOf(peer))).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    } finally {
      client.destroy();
      peer.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails with a system-shaped error on an fd that is not a socket', () => {
    const fd = openSync(__filename, 'r');
    try {
      expect(() => binding.peerCredentials(fd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', syscall: 'getsockopt' }));
    } finally {
      closeSync(fd);
    }
  });

  it('rejects a non-number fd with a TypeError', () => {
    expect(() => binding.peerCredentials('3' as unknown as number)).toThrow(TypeError);
  });
});
