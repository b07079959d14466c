// @vmlink/vsock stream sockets over AF_VSOCK loopback (CID 1), inside the test guest.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { pipeline } from 'node:stream/promises';

import { VsockSocket, connect, createServer, localCid } from '@vmlink/vsock';
import { loadBinding } from '@vmlink/native';

import { LOOPBACK, closed, listen, nextError, openFds, pattern, readAll, sha256, tick } from './helpers.mjs';

const ECHO_SIZES = [1, 64 * 1024, 64 * 1024 * 1024];

describe('echo over CID 1', () => {
  for (const size of ECHO_SIZES) {
    it(`${size} B client -> server -> client, byte-exact by SHA-256`, async () => {
      const { server, port } = await listen((socket) => void pipeline(socket, socket).catch(() => {}));
      const data = pattern(size, size);
      const client = connect({ cid: LOOPBACK, port });
      await once(client, 'connect');
      const received = readAll(client);
      client.end(data);
      const echoed = await received;
      assert.equal(echoed.length, size);
      assert.equal(sha256(echoed), sha256(data));
      assert.equal(client.bytesRead, size);
      assert.equal(client.bytesWritten, size);
      server.close();
    });

    it(`${size} B server -> client, byte-exact by SHA-256`, async () => {
      const data = pattern(size, size + 7);
      const { server, port } = await listen((socket) => socket.end(data));
      const client = connect({ cid: LOOPBACK, port });
      const received = await readAll(client);
      assert.equal(sha256(received), sha256(data));
      server.close();
    });
  }
});

describe('connection shape', () => {
  it("emits 'connect' then 'ready', fills addresses, and ends with close(false)", async () => {
    let accepted;
    const { server, port } = await listen((socket) => {
      accepted = socket;
      socket.end();
    });
    const events = [];
    const client = connect({ cid: LOOPBACK, port }, () => events.push('callback'));
    client.on('connect', () => events.push('connect'));
    client.on('ready', () => events.push('ready'));
    assert.equal(client.connecting, true);
    assert.equal(client.pending, true);
    await once(client, 'ready');
    assert.deepEqual(events, ['callback', 'connect', 'ready']);
    assert.equal(client.remoteCid, LOOPBACK);
    assert.equal(client.remotePort, port);
    assert.equal(typeof client.localPort, 'number');
    assert.equal(accepted.remotePort, client.localPort);
    assert.equal(accepted.localPort, port);
    client.resume();
    client.on('end', () => events.push('end'));
    const hadError = await closed(client);
    assert.equal(hadError, false);
    assert.deepEqual(events.slice(3), ['end']);
    assert.equal(client.fd, -1);
    server.close();
  });

  it('localCid() is 1 in a guest with only the loopback transport', () => {
    assert.equal(localCid(), 1);
  });
});

describe('half-close', () => {
  it('client end(): the server reads EOF and can still answer (allowHalfOpen on the server)', async () => {
    const { server, port } = await listen(
      async (socket) => {
        const request = await readAll(socket);
        socket.end(`got ${request.length}`);
      },
      { allowHalfOpen: true },
    );
    const client = connect({ cid: LOOPBACK, port, allowHalfOpen: true });
    client.end(Buffer.alloc(1000));
    assert.equal((await readAll(client)).toString(), 'got 1000');
    server.close();
  });

  it('server end(): the client reads EOF and can still send (allowHalfOpen on the client)', async () => {
    const { server, port } = await listen(async (socket) => {
      socket.write('bye');
      socket.end();
      const rest = await readAll(socket);
      assert.equal(rest.toString(), 'late reply');
    }, { allowHalfOpen: true });
    const client = connect({ cid: LOOPBACK, port, allowHalfOpen: true });
    assert.equal((await readAll(client)).toString(), 'bye');
    assert.equal(client.writable, true);
    client.end('late reply');
    assert.equal(await closed(client), false);
    server.close();
  });

  it('without allowHalfOpen the socket ends its side when the peer ends (like net)', async () => {
    const { server, port } = await listen((socket) => socket.end('x'));
    const client = connect({ cid: LOOPBACK, port });
    const ended = once(client, 'end');
    const finished = once(client, 'finish');
    const closing = closed(client);
    client.resume();
    await ended;
    await finished;
    assert.equal(client.writable, false);
    assert.equal(await closing, false);
    server.close();
  });

  it('write after end is ERR_STREAM_WRITE_AFTER_END', async () => {
    const { server, port } = await listen((socket) => socket.resume());
    const client = connect({ cid: LOOPBACK, port });
    const emitted = nextError(client);
    client.end();
    const error = await new Promise((resolve) => client.write('late', resolve));
    assert.equal(error.code, 'ERR_STREAM_WRITE_AFTER_END');
    assert.equal((await emitted).code, 'ERR_STREAM_WRITE_AFTER_END');
    client.destroy();
    server.close();
  });
});

describe('backpressure', () => {
  it("write() returns false, 'drain' follows, and a paused reader keeps memory bounded", async () => {
    let serverSide;
    const { server, port } = await listen((socket) => {
      serverSide = socket;
      socket.pause();
    });
    const client = connect({ cid: LOOPBACK, port });
    await once(client, 'connect');
    while (serverSide === undefined) await tick(5);

    const chunk = pattern(1024 * 1024, 3);
    let written = 0;
    while (client.write(chunk)) written += chunk.length;
    written += chunk.length;
    let drained = false;
    client.once('drain', () => (drained = true));
    const before = process.memoryUsage().arrayBuffers;
    await tick(300); // the reader stays paused: nothing may pile up anywhere
    assert.equal(drained, false);
    assert.ok(serverSide.readableLength <= serverSide.readableHighWaterMark + 64 * 1024, `reader buffered ${serverSide.readableLength}`);
    assert.ok(client.writableLength <= chunk.length + client.writableHighWaterMark, `writer queued ${client.writableLength}`);
    assert.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024);

    const received = readAll(serverSide);
    serverSide.resume();
    await once(client, 'drain');
    client.end();
    assert.equal((await received).length, written);
    server.close();
  });
});

describe('many connections', () => {
  it('100 parallel connections each echo their own data', async () => {
    const { server, port } = await listen((socket) => void pipeline(socket, socket).catch(() => {}));
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const data = pattern(4096 + i, i + 1);
        const client = connect({ cid: LOOPBACK, port });
        const received = readAll(client);
        client.end(data);
        return sha256(await received) === sha256(data);
      }),
    );
    assert.deepEqual(results, Array(100).fill(true));
    server.close();
  });

  it('1000 connect/close cycles leave the fd count unchanged', async () => {
    const { server, port } = await listen((socket) => socket.destroy());
    const before = openFds();
    for (let i = 0; i < 1000; i++) {
      const client = connect({ cid: LOOPBACK, port });
      await once(client, 'connect');
      client.destroy();
      await closed(client);
    }
    while (server.connections > 0) await tick(5);
    assert.equal(openFds(), before);
    server.close();
  });
});

describe('failures', () => {
  it('a port with no listener fails with a connect error naming the address', async () => {
    const { server, port } = await listen(() => {});
    server.close(); // a port that surely has no listener now
    await once(server, 'close');
    const client = connect({ cid: LOOPBACK, port });
    const closing = closed(client);
    const error = await nextError(client);
    assert.ok(['ECONNRESET', 'ECONNREFUSED', 'ENODEV', 'ENETUNREACH', 'ETIMEDOUT'].includes(error.code), error.code);
    assert.equal(error.syscall, 'connect');
    assert.equal(error.cid, LOOPBACK);
    assert.equal(error.port, port);
    assert.equal(typeof error.errno, 'number');
    assert.equal(error.message, `connect ${error.code} vsock://1:${port}`);
    assert.equal(await closing, true);
  });

  it('an AbortSignal already aborted: AbortError, no socket created', async () => {
    const before = openFds();
    const client = connect({ cid: LOOPBACK, port: 9, signal: AbortSignal.abort() });
    const error = await nextError(client);
    assert.equal(error.name, 'AbortError');
    assert.equal(error.code, 'ABORT_ERR');
    assert.equal(openFds(), before);
  });

  it('an AbortSignal aborted during connect: AbortError and the fd is closed', async () => {
    const { server, port } = await listen((socket) => socket.resume());
    const before = openFds();
    const controller = new AbortController();
    const client = connect({ cid: LOOPBACK, port, signal: controller.signal });
    // connect() has run (EINPROGRESS); its completion cannot arrive before we yield.
    assert.equal(client.connecting, true);
    assert.equal(openFds(), before + 1);
    controller.abort();
    const error = await nextError(client);
    assert.equal(error.name, 'AbortError');
    assert.equal(error.code, 'ABORT_ERR');
    assert.equal(client.fd, -1);
    assert.equal(openFds(), before);
    server.close();
  });

  it('an AbortSignal aborted after connect destroys the socket, as net does', async () => {
    const { server, port } = await listen((socket) => socket.resume());
    const controller = new AbortController();
    const client = connect({ cid: LOOPBACK, port, signal: controller.signal });
    await once(client, 'connect');
    controller.abort();
    const error = await nextError(client);
    assert.equal(error.code, 'ABORT_ERR');
    server.close();
  });

  it('timeout: a connect that succeeds in time clears its timer (the process can exit)', async () => {
    const script = `
      import { connect, createServer } from '@vmlink/vsock';
      const server = createServer((s) => s.end());
      server.listen({}, () => {
        const c = connect({ cid: 1, port: server.address().port, timeout: 60000 }, () => { c.resume(); server.close(); });
      });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  });

  it('connect on a destroyed socket throws ERR_SOCKET_CLOSED; connect twice throws', async () => {
    const { server, port } = await listen((socket) => socket.resume());
    const client = connect({ cid: LOOPBACK, port });
    assert.throws(() => client.connect({ cid: LOOPBACK, port }), { code: 'ERR_VMLINK_SOCKET_CONNECTED' });
    await once(client, 'connect');
    client.destroy();
    client.destroy(); // twice: a no-op
    assert.throws(() => client.connect({ cid: LOOPBACK, port }), { code: 'ERR_SOCKET_CLOSED' });
    server.close();
  });

  it("setTimeout(ms) emits 'timeout' after ms of silence, and the socket stays open", async () => {
    const { server, port } = await listen((socket) => socket.resume());
    const client = connect({ cid: LOOPBACK, port });
    await once(client, 'connect');
    let fired = 0;
    client.setTimeout(50, () => fired++);
    await once(client, 'timeout');
    assert.equal(fired, 1);
    assert.equal(client.destroyed, false);
    client.setTimeout(0);
    client.destroy();
    server.close();
  });
});

describe('servers', () => {
  it('close() stops accepting while live connections keep working; close comes after they end', async () => {
    const sockets = [];
    const { server, port } = await listen((socket) => {
      sockets.push(socket);
      void pipeline(socket, socket).catch(() => {});
    });
    const live = connect({ cid: LOOPBACK, port });
    await once(live, 'connect');
    while (sockets.length === 0) await tick(5);
    let serverClosed = false;
    server.close(() => (serverClosed = true));
    assert.equal(server.listening, false);
    live.write('still here');
    const [echo] = await once(live, 'data');
    assert.equal(echo.toString(), 'still here');
    assert.equal(serverClosed, false);

    const late = connect({ cid: LOOPBACK, port });
    const error = await nextError(late);
    assert.ok(['ECONNRESET', 'ECONNREFUSED', 'ENODEV', 'ETIMEDOUT'].includes(error.code), error.code);

    live.end();
    await closed(live);
    while (!serverClosed) await tick(5);
  });

  it('an unref()ed server lets the process exit', async () => {
    const script = `
      import { createServer } from '@vmlink/vsock';
      const server = createServer(() => {});
      server.listen({ port: 4321 }, () => server.unref());`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit', cwd: process.cwd() });
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  });

  it('VsockSocket.fromFd adopts a connected fd; listen({ fd }) adopts a bound one', async () => {
    const binding = loadBinding();
    const bound = binding.vsockSocket('stream');
    binding.vsockBind(bound, 0xffffffff, 0xffffffff);
    const { port } = binding.vsockSockName(bound);
    const server = createServer((socket) => socket.end('adopted'));
    server.listen({ fd: bound });
    await once(server, 'listening');
    assert.equal(server.address().port, port);

    const raw = binding.vsockSocket('stream');
    if (!binding.vsockConnect(raw, LOOPBACK, port, 0)) {
      while (true) {
        await tick(5);
        const error = binding.vsockConnectResult(raw, LOOPBACK, port);
        if (error) throw error;
        try {
          binding.vsockPeerName(raw);
          break;
        } catch {
          // still connecting
        }
      }
    }
    const socket = VsockSocket.fromFd(raw);
    assert.equal(socket.remotePort, port);
    assert.equal((await readAll(socket)).toString(), 'adopted');
    server.close();
  });
});
