// Runs INSIDE the guest: the registry and reconnecting() over real vsock loopback.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';

import { createTransports, reconnecting } from '@vmlink/transport';
import { vsock } from '@vmlink/transport-vsock';

test('createTransports routes vsock:// URIs: listen any, dial local', async () => {
  const transports = createTransports([vsock()]);
  const listener = await transports.listen('vsock://any:any');
  const port = transports.resolve(listener.address()).address.port;
  const accepted = once(listener, 'connection');
  const connection = await transports.dial(`vsock://local:${port}`);
  const [server] = await accepted;
  assert.equal(connection.remoteAddress, `vsock://1:${port}`);
  // peer: the CID the kernel reports for the other end (loopback: 1), on both sides.
  assert.deepEqual(connection.peer, { cid: 1 });
  assert.deepEqual(server.peer, { cid: 1 });
  assert.ok(Object.isFrozen(server.peer));
  server.write('hi');
  const [chunk] = await once(connection, 'data');
  assert.equal(chunk.toString(), 'hi');
  connection.destroy();
  server.destroy();
  await listener.close();
});

test('reconnecting() over vsock comes up when the listener appears and again after it restarts', async () => {
  const transport = vsock();
  const probe = await transport.listen('vsock://any:any');
  const port = transport.parse(probe.address()).port;
  await probe.close();

  const client = reconnecting(transport, `vsock://local:${port}`, { backoff: { initialDelay: 10, maxDelay: 100 } });
  // The link is read (as any user would): only a read Connection sees the peer's end.
  client.on('up', (connection) => connection.resume());
  await once(client, 'retry'); // nobody listens yet
  let listener = await transport.listen(`vsock://any:${port}`);
  const accepted = [];
  listener.on('connection', (c) => accepted.push(c));
  await client.waitForConnection();

  const down = once(client, 'down');
  await listener.close();
  for (const c of accepted.splice(0)) c.destroy();
  await down;

  listener = await transport.listen(`vsock://any:${port}`);
  const up = once(client, 'up');
  await up;
  await client.close();
  await listener.close();
});
