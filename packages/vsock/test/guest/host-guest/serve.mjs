// Guest side of host-guest.vm.test.ts: node:http (+ ws upgrades) and node:http2 servers on
// @vmlink/vsock listeners, reached by the host through the vhost-user device. Runs until killed.
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';

import { createServer } from '@vmlink/vsock';
import { WebSocketServer } from 'ws';

const [httpPort, h2Port] = process.argv.slice(2).map(Number);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

const wss = new WebSocketServer({ noServer: true });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));

const httpServer = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  res.setHeader('x-peer', `${req.socket.remoteFamily}:${req.socket.remoteAddress}`);
  res.end(sha256(Buffer.concat(chunks)));
});
httpServer.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
createServer((socket) => httpServer.emit('connection', socket)).listen({ port: httpPort });

const h2Server = http2.createServer();
h2Server.on('stream', (stream) => {
  stream.respond({ ':status': 200 });
  stream.pipe(stream);
});
createServer((socket) => h2Server.emit('connection', socket)).listen({ port: h2Port });
console.log('listening');
