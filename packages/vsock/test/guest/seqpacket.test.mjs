// SOCK_SEQPACKET over CID 1: boundaries kept, truncation reported, inside the test guest.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import { connectSeqpacket, createSeqpacketServer } from '@vmlink/vsock';

import { LOOPBACK, closed, nextError, openFds, pattern, sha256, tick } from './helpers.mjs';

async function seqServer(onConnection, options = {}) {
  const server = createSeqpacketServer(options, onConnection);
  server.listen({});
  await once(server, 'listening');
  return { server, port: server.address().port };
}

function collect(socket, count) {
  return new Promise((resolve, reject) => {
    const messages = [];
    socket.on('error', reject);
    socket.on('message', (message) => {
      messages.push(message);
      if (messages.length === count) resolve(messages);
    });
  });
}

describe('SEQPACKET over CID 1', () => {
  it('keeps message boundaries both ways (sizes 1 B .. 64 KiB, sent back to back)', async () => {
    const { server, port } = await seqServer((socket) => socket.on('message', (message) => socket.send(message)));
    const sizes = [1, 2, 100, 4096, 65_536, 3, 1];
    const sent = sizes.map((size, i) => pattern(size, i + 1));
    const client = connectSeqpacket({ cid: LOOPBACK, port });
    const received = collect(client, sizes.length);
    await once(client, 'connect');
    for (const message of sent) client.send(message);
    const messages = await received;
    assert.deepEqual(
      messages.map((m) => m.length),
      sizes,
    );
    assert.deepEqual(messages.map(sha256), sent.map(sha256));
    client.close();
    server.close();
  });

  it('send(buf, cb) calls back once each message is taken; bytes are counted', async () => {
    const { server, port } = await seqServer((socket) => socket.on('message', () => {}));
    const client = connectSeqpacket({ cid: LOOPBACK, port });
    const results = await Promise.all([1, 2, 3].map((n) => new Promise((resolve) => client.send(Buffer.alloc(n), resolve))));
    assert.deepEqual(results, [null, null, null]);
    assert.equal(client.bytesWritten, 6);
    client.close();
    server.close();
  });

  it('a message longer than maxMessageSize is an ERR_VMLINK_MESSAGE_TRUNCATED error naming both sizes; later messages are whole', async () => {
    const { server, port } = await seqServer(
      (socket) => {
        socket.on('error', (error) => socket.send(Buffer.from(JSON.stringify({ code: error.code, size: error.size, max: error.maxMessageSize, message: error.message }))));
        socket.on('message', (message) => socket.send(Buffer.from(`ok ${message.length}`)));
      },
      { maxMessageSize: 1024 },
    );
    const client = connectSeqpacket({ cid: LOOPBACK, port });
    const replies = collect(client, 2);
    client.send(Buffer.alloc(5000, 1));
    client.send(Buffer.alloc(1024, 2));
    const [report, ok] = await replies;
    const error = JSON.parse(report.toString());
    assert.equal(error.code, 'ERR_VMLINK_MESSAGE_TRUNCATED');
    assert.equal(error.size, 5000);
    assert.equal(error.max, 1024);
    assert.match(error.message, /5000 bytes was truncated to 1024 bytes/);
    assert.equal(ok.toString(), 'ok 1024');
    client.close();
    server.close();
  });

  it("end() sends what is queued, then the peer sees 'end' and both sides close", async () => {
    let serverSide;
    const { server, port } = await seqServer((socket) => (serverSide = socket));
    const client = connectSeqpacket({ cid: LOOPBACK, port });
    await once(client, 'connect');
    while (serverSide === undefined) await tick(5);
    const got = collect(serverSide, 2);
    const ended = once(serverSide, 'end');
    client.send(Buffer.from('a'));
    client.send(Buffer.from('b'));
    client.end();
    assert.deepEqual((await got).map(String), ['a', 'b']);
    await ended;
    assert.throws(() => client.send(Buffer.from('late')), { code: 'ERR_STREAM_WRITE_AFTER_END' });
    client.close();
    await closed(client);
    server.close();
  });

  it('pause() stops messages until resume(); none are lost', async () => {
    const { server, port } = await seqServer((socket) => {
      for (let i = 0; i < 50; i++) socket.send(Buffer.from(String(i)));
    });
    const client = connectSeqpacket({ cid: LOOPBACK, port });
    const seen = [];
    client.on('message', (message) => {
      seen.push(Number(message));
      if (seen.length === 10) client.pause();
    });
    while (seen.length < 10) await tick(5);
    await tick(100);
    assert.equal(seen.length, 10);
    client.resume();
    while (seen.length < 50) await tick(5);
    assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i));
    client.close();
    server.close();
  });

  it('a port with no listener fails with a connect error; connect/close cycles leak no fd', async () => {
    const { server, port } = await seqServer((socket) => socket.close());
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const client = connectSeqpacket({ cid: LOOPBACK, port });
      await once(client, 'connect');
      client.close();
      await closed(client);
    }
    while (server.connections > 0) await tick(5);
    assert.equal(openFds(), before);
    server.close();
    await once(server, 'close');
    const client = connectSeqpacket({ cid: LOOPBACK, port });
    const error = await nextError(client);
    assert.ok(['ECONNRESET', 'ECONNREFUSED', 'ENODEV', 'ENETUNREACH', 'ETIMEDOUT'].includes(error.code), error.code);
    assert.equal(error.port, port);
  });
});
