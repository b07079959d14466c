// @vmlink/vsock in a guest with a REAL host<->guest vsock device (testvm's `vsock: true`:
// vhost-user-vsock-pci served by @vmlink/vhost-user-vsock), not loopback: node:http with a
// keep-alive agent, node:http2 streams and ws, both directions. The host side is plain
// node:net on the device's hybrid-vsock Unix sockets (a minimal CONNECT dialer below; the
// full client is @vmlink/transport-hvsock's job).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

import { startVm, type Vm } from '@vmlink/testvm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const guestDir = fileURLToPath(new URL('./guest/host-guest', import.meta.url));
const BOOT_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 180_000;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Hybrid-vsock dial: `CONNECT port\n`, the `OK ...` line, then the socket (bytes after the line are put back). */
async function hvsockDial(udsPath: string, port: number): Promise<Socket> {
  const socket = netConnect(udsPath);
  await once(socket, 'connect');
  socket.write(`CONNECT ${port}\n`);
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = (): void => {
      socket.off('data', onData).off('close', onClose).off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) return;
      cleanup();
      socket.pause();
      const line = buffered.subarray(0, newline).toString('latin1');
      if (!/^OK \d+$/.test(line)) {
        socket.destroy();
        reject(new Error(`unexpected hybrid vsock reply '${line}'`));
        return;
      }
      const rest = buffered.subarray(newline + 1);
      if (rest.length > 0) socket.unshift(rest);
      // Back to the state of a fresh socket: node:http attaches 'data' and expects that to start the flow.
      (socket as { readableFlowing: boolean | null }).readableFlowing = null;
      resolve(socket);
    };
    const onClose = (): void => {
      cleanup();
      reject(Object.assign(new Error(`vsock port ${port}: closed without OK (no listener?)`), { code: 'ECONNREFUSED' }));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    socket.on('data', onData).on('close', onClose).on('error', onError);
  });
}

/** An http.Agent dialling a guest vsock port through the device (async createConnection, as Agent allows). */
class GuestAgent extends http.Agent {
  constructor(
    private readonly udsPath: string,
    private readonly port: number,
    options: http.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(_options: http.ClientRequestArgs, callback?: (error: Error | null, socket: Socket) => void): undefined {
    hvsockDial(this.udsPath, this.port).then(
      (socket) => callback?.(null, socket),
      (error: Error) => callback?.(error, undefined as never),
    );
    return undefined;
  }
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function post(agent: http.Agent, data: Buffer, path = '/'): Promise<{ reused: boolean; peer: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: 'guest', method: 'POST', path }, (res) => {
      readAll(res).then((body) => resolve({ reused: req.reusedSocket, peer: res.headers['x-peer'] as string | undefined, body: body.toString() }), reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('@vmlink/vsock over a host<->guest vsock device (http, http2, ws)', () => {
  let vm: Vm;
  let udsPath: string;

  beforeAll(async () => {
    vm = await startVm({ vsock: true, share: repoRoot, shareReadOnly: true, memoryMiB: 1024, cpus: 2 });
    if (vm.vsockPath === undefined) throw new Error('no vsock device');
    udsPath = vm.vsockPath;
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    await vm?.stop();
  });

  it(
    'host clients -> guest servers on @vmlink/vsock: keep-alive reuse, 16 concurrent requests, 20 h2 streams, ws echo, bad requests',
    async () => {
      const started = await vm.run('sh', ['-c', 'node serve.mjs 8080 8081 >/tmp/serve.log 2>&1 &'], { cwd: guestDir });
      expect(started.exitCode).toBe(0);
      // The server is up once a CONNECT is answered.
      for (let attempt = 0; ; attempt++) {
        const probe = await hvsockDial(udsPath, 8080).catch(() => undefined);
        if (probe !== undefined) {
          probe.destroy();
          break;
        }
        if (attempt > 300) throw new Error(`the guest server did not start: ${(await vm.run('cat', ['/tmp/serve.log'])).stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const agent = new GuestAgent(udsPath, 8080, { keepAlive: true, maxSockets: 4 });
      const bodies = Array.from({ length: 16 }, (_, i) => Buffer.alloc(1000 + i * 40_000, i + 1));
      const sequential = [];
      for (const data of bodies.slice(0, 5)) sequential.push(await post(agent, data));
      expect(sequential.map((r) => r.reused)).toEqual([false, true, true, true, true]);
      sequential.forEach((r, i) => expect(r.body).toBe(sha256(bodies[i] as Buffer)));
      // The guest handler saw the host as vsock CID 2.
      expect(sequential[0]?.peer).toBe('vsock:2');
      const concurrent = await Promise.all(bodies.map((data) => post(agent, data)));
      concurrent.forEach((r, i) => expect(r.body).toBe(sha256(bodies[i] as Buffer)));
      // (No bound on the connections here: Agent counts a socket only once an asynchronous
      // createConnection delivered it, so maxSockets does not hold for this host-side agent.)
      agent.destroy();

      const h2Socket = await hvsockDial(udsPath, 8081);
      const session = http2.connect('http://guest', { createConnection: () => h2Socket });
      const replies = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const stream = session.request({ ':method': 'POST', ':path': `/${i}` });
          const reply = readAll(stream);
          stream.end(Buffer.alloc(5000 + i * 20_000, i));
          return sha256(await reply) === sha256(Buffer.alloc(5000 + i * 20_000, i));
        }),
      );
      expect(replies.every(Boolean)).toBe(true);
      session.close();

      const ws = new WebSocket('ws://guest/echo', {
        createConnection: ((_options: unknown, callback: (error: Error | null, socket?: Socket) => void) => {
          hvsockDial(udsPath, 8080).then((socket) => callback(null, socket), callback);
          return undefined;
        }) as never,
      });
      await once(ws, 'open');
      const big = Buffer.alloc(1024 * 1024, 9);
      const messages: Buffer[] = [];
      ws.on('message', (data: Buffer) => messages.push(Buffer.from(data)));
      ws.send('hello');
      ws.send(big);
      while (messages.length < 2) await once(ws, 'message');
      expect(messages[0]?.toString()).toBe('hello');
      expect(sha256(messages[1] as Buffer)).toBe(sha256(big));
      ws.close(1000);
      await once(ws, 'close');

      // Garbage gets node:http's default clientError answer (it reads socket.bytesWritten and socket.server).
      const raw = await hvsockDial(udsPath, 8080);
      const answer = readAll(raw);
      raw.end('NOT HTTP\r\n\r\n');
      expect((await answer).toString()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'guest clients on @vmlink/vsock -> host servers: VsockAgent to CID 2 with keep-alive, 20 h2 streams, ws echo',
    async () => {
      const [httpPort, h2Port] = [9080, 9081];
      const httpConnections: Socket[] = [];
      const wss = new WebSocketServer({ noServer: true });
      wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
      const httpServer = http.createServer((req, res) => {
        readAll(req).then((data) => {
          res.setHeader('x-peer', 'host');
          res.end(sha256(data));
        }, () => res.destroy());
      });
      httpServer.on('connection', (socket: Socket) => httpConnections.push(socket));
      httpServer.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
      const h2Server = http2.createServer();
      h2Server.on('stream', (stream) => {
        stream.respond({ ':status': 200 });
        stream.pipe(stream);
      });
      httpServer.listen(`${udsPath}_${httpPort}`);
      h2Server.listen(`${udsPath}_${h2Port}`);
      await Promise.all([once(httpServer, 'listening'), once(h2Server, 'listening')]);
      try {
        const run = await vm.run('node', ['client.mjs', String(httpPort), String(h2Port)], { cwd: guestDir, timeoutMs: TEST_TIMEOUT_MS - 20_000 });
        expect(run.stderr).toBe('');
        expect(run.exitCode).toBe(0);
        const result = JSON.parse(run.stdout) as Record<string, unknown>;
        expect(result).toEqual({
          sequentialReused: [false, true, true, true, true],
          peer: 'host',
          concurrentOk: true,
          h2Streams: 20,
          wsOk: true,
        });
        // 5 sequential on one socket, 16 concurrent on at most 4, plus the ws connection.
        expect(httpConnections.length).toBeGreaterThanOrEqual(2);
        expect(httpConnections.length).toBeLessThanOrEqual(5);
      } finally {
        httpServer.closeAllConnections();
        httpServer.close();
        h2Server.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
