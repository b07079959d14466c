import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dialSocket, socketListener, whenListening, type Connection, type Transport } from '../src/index.js';

// The socket-like base on real Unix sockets (node:net), without any plugin around it.
const dir = mkdtempSync(join(tmpdir(), 'vmlink-socket-like-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const freshPath = (): string => join(dir, `s${counter++}.sock`);
const fakeTransport = { name: 'test' } as unknown as Transport;

async function listening(path: string, onConnection?: (socket: Socket) => void): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  await whenListening(server, () => server.listen(path));
  return server;
}

describe('whenListening', () => {
  it("rejects with the server's error (EADDRINUSE) and leaves no listener attached either way", async () => {
    const path = freshPath();
    const first = await listening(path);
    expect(first.listenerCount('error') + first.listenerCount('listening')).toBe(0);
    const second = createServer();
    await expect(whenListening(second, () => second.listen(path))).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(second.listenerCount('error') + second.listenerCount('listening')).toBe(0);
    first.close();
  });
});

describe('dialSocket', () => {
  it('a failing handshake rejects with its error and closes the socket (the server sees the close)', async () => {
    const path = freshPath();
    const servers: Server[] = [];
    const serverSide = new Promise<Socket>((resolve) => void listening(path, resolve).then((s) => servers.push(s)));
    const failure = Object.assign(new Error('bad reply'), { code: 'ERR_TEST_BAD' });
    await expect(
      dialSocket(fakeTransport, `test:${path}`, undefined, {
        open: () => createConnection({ path }),
        handshake: async () => {
          throw failure;
        },
        describe: () => ({ localAddress: 'test:', remoteAddress: `test:${path}` }),
      }),
    ).rejects.toBe(failure);
    const socket = await serverSide;
    socket.resume();
    await once(socket, 'end');
    for (const server of servers) server.close();
  });

  it('an error between the end of the handshake and the hand-out fails the dial (not an unheard error)', async () => {
    const path = freshPath();
    const server = await listening(path, (s) => s.on('error', () => {}));
    const reset = Object.assign(new Error('reset right behind the reply'), { code: 'ECONNRESET' });
    await expect(
      dialSocket(fakeTransport, `test:${path}`, undefined, {
        open: () => createConnection({ path }),
        // Settles at once, and the error is queued as the next tick: it is emitted before
        // the handshake's promise callbacks run (ticks run before microtasks).
        handshake: (socket) => {
          process.nextTick(() => socket.emit('error', reset));
          return Promise.resolve();
        },
        describe: () => ({ localAddress: 'test:', remoteAddress: `test:${path}` }),
      }),
    ).rejects.toBe(reset);
    server.close();
  });

  it('a socket error after a failed dial is swallowed, not an uncaught exception', async () => {
    const path = freshPath();
    const controller = new AbortController();
    let opened: Socket | undefined;
    const dialing = dialSocket(fakeTransport, `test:${path}`, { signal: controller.signal }, {
      open: () => (opened = createConnection({ path })), // ENOENT arrives after the abort
      describe: () => ({ localAddress: 'test:', remoteAddress: `test:${path}` }),
    });
    controller.abort();
    await expect(dialing).rejects.toMatchObject({ code: 'ABORT_ERR' });
    opened?.emit('error', new Error('late'));
    expect(opened?.destroyed).toBe(true);
  });

  it('hands out the socket itself as the Connection, with the ends describe() gives', async () => {
    const path = freshPath();
    const server = await listening(path, (s) => s.on('error', () => {}).end('hi'));
    const connection = await dialSocket(fakeTransport, `test:${path}`, undefined, {
      open: () => createConnection({ path }),
      describe: () => ({ localAddress: 'test:', remoteAddress: `test:${path}`, peer: { uid: 7 } }),
    });
    expect(connection).toBeInstanceOf((await import('node:net')).Socket);
    expect(connection).toMatchObject({ transport: fakeTransport, localAddress: 'test:', remoteAddress: `test:${path}`, peer: { uid: 7 } });
    expect(connection.listenerCount('error')).toBe(0); // the caller's to handle
    connection.destroy();
    server.close();
  });
});

describe('SocketListener', () => {
  it('a describe() that throws destroys that socket and reports the error; the listener keeps accepting', async () => {
    const path = freshPath();
    const server = await listening(path);
    let calls = 0;
    const listener = await socketListener<Socket>(fakeTransport, server, {
      uri: `test:${path}`,
      describe: () => {
        calls += 1;
        if (calls === 1) throw new Error('cannot name this one');
        return { localAddress: `test:${path}`, remoteAddress: 'test:' };
      },
    }, undefined);
    const errors: Error[] = [];
    listener.on('error', (error) => errors.push(error));
    const first = createConnection({ path });
    first.on('error', () => {}); // the destroyed server side may reset it
    first.resume();
    await once(first, 'close');
    expect(errors.map((e) => e.message)).toEqual(['cannot name this one']);
    const accepted = once(listener, 'connection') as Promise<[Connection]>;
    const second = createConnection({ path });
    second.on('error', () => {});
    const [connection] = await accepted;
    connection.on('error', () => {});
    expect(connection.localAddress).toBe(`test:${path}`);
    second.destroy();
    connection.destroy();
    await listener.close();
  });

  it('close() runs afterClose once and resolves while an accepted Connection is still open', async () => {
    const path = freshPath();
    const server = await listening(path);
    let afterCloseCalls = 0;
    const listener = await socketListener<Socket>(fakeTransport, server, {
      uri: `test:${path}`,
      describe: () => ({ localAddress: `test:${path}`, remoteAddress: 'test:' }),
      afterClose: () => void (afterCloseCalls += 1),
    }, undefined);
    const accepted = once(listener, 'connection') as Promise<[Connection]>;
    const client = createConnection({ path });
    client.on('error', () => {});
    const [connection] = await accepted;
    connection.on('error', () => {});
    await Promise.all([listener.close(), listener.close()]);
    expect(afterCloseCalls).toBe(1);
    expect(connection.destroyed).toBe(false);
    connection.end('still here');
    const [chunk] = (await once(client, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('still here');
    client.destroy();
    connection.destroy();
  });
});
