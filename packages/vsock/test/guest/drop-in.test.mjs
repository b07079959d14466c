// VsockSocket as a drop-in where Node expects a net.Socket: node:http (keep-alive Agent and
// server), node:http2 (concurrent streams on one session: what gRPC runs on) and ws, all
// over AF_VSOCK loopback (CID 1) inside the test guest. The recipes are the README's.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { describe, it } from 'node:test';

import { VsockAgent, connect, createConnection } from '@vmlink/vsock';
import { WebSocket, WebSocketServer } from 'ws';

import { LOOPBACK, closed, listen, pattern, readAll, sha256 } from './helpers.mjs';

/** An HTTP/1.1 server fed by a vsock server (the README recipe); `sockets` are the accepted ones. */
async function httpOverVsock(handler) {
  const httpServer = http.createServer(handler);
  const sockets = [];
  const { server, port } = await listen((socket) => {
    sockets.push(socket);
    httpServer.emit('connection', socket);
  });
  return { httpServer, server, port, sockets };
}

/** One request through `agent`; resolves { res, body } once the body is read. */
function request(agent, options = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: 'guest', path: '/', ...options }, (res) => {
      readAll(res).then((data) => resolve({ req, res, body: data }), reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function closeAll(server, sockets) {
  server.close();
  for (const socket of sockets) socket.destroy();
}

describe('node:http over vsock', () => {
  it('a keep-alive Agent reuses one socket for sequential requests (the setKeepAlive crash)', async () => {
    const { server, port, sockets } = await httpOverVsock((req, res) => {
      res.setHeader('x-remote', `${req.socket.remoteFamily}:${req.socket.remoteAddress}:${req.socket.remotePort}`);
      res.end(`hello ${req.url}`);
    });
    const agent = new VsockAgent({ cid: LOOPBACK, port, keepAlive: true });
    for (let i = 0; i < 5; i++) {
      const { req, res, body } = await request(agent, { path: `/${i}` });
      assert.equal(res.statusCode, 200);
      assert.equal(body.toString(), `hello /${i}`);
      assert.equal(req.reusedSocket, i > 0, `request ${i} reusedSocket`);
      const client = req.socket;
      // What the server's handler saw: this client, in net's field names.
      assert.equal(res.headers['x-remote'], `vsock:${sockets[0].remoteCid}:${client.localPort}`);
      assert.equal(client.remoteAddress, String(LOOPBACK));
      assert.equal(client.remoteFamily, 'vsock');
      assert.equal(client.remotePort, port);
    }
    assert.equal(sockets.length, 1, 'one connection served all five requests');
    assert.equal(sockets[0].remoteFamily, 'vsock');
    assert.equal(sockets[0].remoteAddress, String(sockets[0].remoteCid));
    agent.destroy();
    assert.equal(await closed(sockets[0]), false);
    server.close();
  });

  it('24 concurrent requests share a pool of at most 4 sockets (maxSockets) and every body arrives whole', async () => {
    const { server, port, sockets } = await httpOverVsock(async (req, res) => {
      const body = await readAll(req);
      res.end(sha256(body));
    });
    const agent = new VsockAgent({ cid: LOOPBACK, port, keepAlive: true, maxSockets: 4 });
    const bodies = Array.from({ length: 24 }, (_, i) => pattern(1000 + i * 20_000, i + 1));
    const results = await Promise.all(bodies.map((body) => request(agent, { method: 'POST', path: '/sum' }, body)));
    results.forEach(({ body }, i) => assert.equal(body.toString(), sha256(bodies[i])));
    assert.ok(sockets.length >= 1 && sockets.length <= 4, `${sockets.length} connections for maxSockets 4`);
    agent.destroy();
    closeAll(server, sockets);
  });

  it("the Agent's idle timeout closes a pooled socket, and a new request dials again", async () => {
    const { server, port, sockets } = await httpOverVsock((_req, res) => res.end('ok'));
    const agent = new VsockAgent({ cid: LOOPBACK, port, keepAlive: true, timeout: 200 });
    const first = await request(agent);
    assert.equal(first.req.socket.timeout, 200);
    assert.equal(await closed(sockets[0]), false, 'the idle pooled socket was closed by the agent');
    const second = await request(agent);
    assert.equal(second.req.reusedSocket, false);
    assert.equal(sockets.length, 2);
    agent.destroy();
    closeAll(server, sockets);
  });

  it('a process whose only handles are pooled keep-alive sockets exits by itself (Agent unref)', async () => {
    const { server, port, sockets } = await httpOverVsock((_req, res) => res.end('pong'));
    const script = `
      import http from 'node:http';
      import { VsockAgent } from '@vmlink/vsock';
      const agent = new VsockAgent({ cid: 1, port: ${port}, keepAlive: true });
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve, reject) => http.get({ agent, path: '/' }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
      }
      console.log('done', Object.values(agent.freeSockets).flat().length);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: import.meta.dirname, stdio: ['ignore', 'pipe', 'inherit'] });
    const output = readAll(child.stdout);
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    assert.equal((await output).toString().trim(), 'done 1', 'it exited with one idle pooled socket');
    assert.equal(sockets.length, 1);
    closeAll(server, sockets);
  });

  it('http.request({ createConnection }) without an agent, and a 4 MiB upload echoed back', async () => {
    const { server, port, sockets } = await httpOverVsock((req, res) => req.pipe(res));
    const data = pattern(4 * 1024 * 1024, 99);
    const { body } = await request(undefined, { method: 'PUT', createConnection: () => createConnection({ cid: LOOPBACK, port }) }, data);
    assert.equal(sha256(body), sha256(data));
    closeAll(server, sockets);
  });

  it("garbage from a client gets node:http's 400 and a closed socket (socket.server is set)", async () => {
    const { httpServer, server, port, sockets } = await httpOverVsock(() => assert.fail('no request'));
    const clientErrors = [];
    httpServer.on('clientError', (error, socket) => {
      clientErrors.push(error.code);
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    const client = connect({ cid: LOOPBACK, port });
    client.end('NOT HTTP AT ALL\r\n\r\n');
    const reply = (await readAll(client)).toString();
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request/);
    assert.deepEqual(clientErrors, ['HPE_INVALID_METHOD']);
    closeAll(server, sockets);
  });
});

describe('node:http2 over vsock', () => {
  it('20 concurrent streams on one session, each body echoed byte-exact', async () => {
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200, 'x-path': headers[':path'] });
      stream.pipe(stream);
    });
    const { server, port } = await listen((socket) => h2.emit('connection', socket));
    const session = http2.connect('http://guest', { createConnection: () => createConnection({ cid: LOOPBACK, port }) });
    const bodies = Array.from({ length: 20 }, (_, i) => pattern(10_000 + i * 50_000, i + 7));
    const replies = await Promise.all(
      bodies.map(async (body, i) => {
        const stream = session.request({ ':method': 'POST', ':path': `/echo/${i}` });
        // Read while writing: the echo is flow-controlled, so an unread reply would stall the upload.
        const response = once(stream, 'response');
        const data = readAll(stream);
        stream.end(body);
        return { headers: (await response)[0], data: await data };
      }),
    );
    replies.forEach(({ headers, data }, i) => {
      assert.equal(headers[':status'], 200);
      assert.equal(headers['x-path'], `/echo/${i}`);
      assert.equal(sha256(data), sha256(bodies[i]));
    });
    assert.equal(server.connections, 1, 'all streams shared one vsock connection');
    session.close();
    await once(session, 'close');
    h2.close();
    server.close();
    await once(server, 'close');
  });
});

describe('ws over vsock', () => {
  it('a WebSocket echo: text, a 1 MiB binary message, ping/pong, close codes', async () => {
    const wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    const httpServer = http.createServer((_req, res) => res.writeHead(426).end());
    httpServer.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
    const sockets = [];
    const { server, port } = await listen((socket) => {
      sockets.push(socket);
      httpServer.emit('connection', socket);
    });

    const ws = new WebSocket('ws://guest/echo', { createConnection: () => createConnection({ cid: LOOPBACK, port }) });
    await once(ws, 'open');
    const received = [];
    ws.on('message', (data, isBinary) => received.push({ data: Buffer.from(data), isBinary }));
    const big = pattern(1024 * 1024, 5);
    for (let i = 0; i < 50; i++) ws.send(`message ${i}`);
    ws.send(big);
    ws.ping('p');
    const [pong] = await once(ws, 'pong');
    assert.equal(pong.toString(), 'p');
    while (received.length < 51) await once(ws, 'message');
    received.slice(0, 50).forEach(({ data, isBinary }, i) => {
      assert.equal(isBinary, false);
      assert.equal(data.toString(), `message ${i}`);
    });
    assert.equal(received[50].isBinary, true);
    assert.equal(sha256(received[50].data), sha256(big));

    ws.close(4001, 'bye');
    const [code, reason] = await once(ws, 'close');
    assert.equal(code, 4001);
    assert.equal(reason.toString(), 'bye');
    assert.equal(await closed(sockets[0]), false);
    wss.close();
    server.close();
  });
});
