// Guest side of host-guest.vm.test.ts: node:http with a keep-alive VsockAgent, node:http2 and
// ws, all dialling the host (CID 2) through the vhost-user device. Prints one JSON line.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';

import { VsockAgent, VMADDR_CID_HOST, createConnection } from '@vmlink/vsock';
import { WebSocket } from 'ws';

const [httpPort, h2Port] = process.argv.slice(2).map(Number);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const body = (i) => Buffer.alloc(1000 + i * 30_000, i + 1);

function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function request(agent, data) {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: 'host', method: 'POST', path: '/' }, (res) =>
      readAll(res).then((reply) => resolve({ reused: req.reusedSocket, peer: res.headers['x-peer'], ok: reply.toString() === sha256(data) }), reject),
    );
    req.on('error', reject);
    req.end(data);
  });
}

const result = {};
const agent = new VsockAgent({ cid: VMADDR_CID_HOST, port: httpPort, keepAlive: true, maxSockets: 4 });
const sequential = [];
for (let i = 0; i < 5; i++) sequential.push(await request(agent, body(i)));
result.sequentialReused = sequential.map((r) => r.reused);
result.peer = sequential[0].peer;
const concurrent = await Promise.all(Array.from({ length: 16 }, (_, i) => request(agent, body(i))));
result.concurrentOk = concurrent.every((r) => r.ok) && sequential.every((r) => r.ok);
agent.destroy();

const session = http2.connect('http://host', { createConnection: () => createConnection({ cid: VMADDR_CID_HOST, port: h2Port }) });
const streams = await Promise.all(
  Array.from({ length: 20 }, async (_, i) => {
    const stream = session.request({ ':method': 'POST', ':path': `/${i}` });
    const reply = readAll(stream);
    stream.end(body(i));
    return sha256(await reply) === sha256(body(i));
  }),
);
result.h2Streams = streams.filter(Boolean).length;
session.close();

const ws = new WebSocket('ws://host/echo', { createConnection: () => createConnection({ cid: VMADDR_CID_HOST, port: httpPort }) });
await once(ws, 'open');
const big = Buffer.alloc(512 * 1024, 7);
ws.send('hello');
ws.send(big);
const messages = [];
ws.on('message', (data) => messages.push(Buffer.from(data)));
while (messages.length < 2) await once(ws, 'message');
result.wsOk = messages[0].toString() === 'hello' && sha256(messages[1]) === sha256(big);
ws.close(1000);
await once(ws, 'close');
console.log(JSON.stringify(result));
