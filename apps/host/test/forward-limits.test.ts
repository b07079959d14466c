/**
 * `vmlink forward` within the agent's DEFAULT limits over unix: more TCP connections at
 * once than the agent takes (--max-connections 64, 56 per peer; --memory-budget 256M,
 * 2 MiB per forward) wait for room instead of failing, and the wait line is bounded
 * (MAX_WAITING_CONNECTIONS beyond the backlog, then closed with a log line). Real agent,
 * real CLI, real sockets (loopback only).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardRoom, MAX_WAITING_CONNECTIONS } from '../src/commands/forward.js';
import { type AgentProcess, spawnVmlink, startAgent } from './helpers.js';

interface Service {
  server: Server;
  port: number;
  /** Most requests the service held open at once. */
  peak: () => number;
  held: ServerResponse[];
}

/** /slow answers after 300 ms (so many overlap), /hold only when the test releases it. */
function service(): Promise<Service> {
  let open = 0;
  let peak = 0;
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    open += 1;
    peak = Math.max(peak, open);
    res.on('close', () => (open -= 1));
    if (req.url === '/hold') held.push(res);
    else if (req.url?.startsWith('/slow')) setTimeout(() => res.end(`ok ${req.url}`), 300);
    else res.end(`ok ${req.url}`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, peak: () => peak, held })));
}

function get(port: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function startForward(args: string[]): Promise<{ fwd: ReturnType<typeof spawnVmlink>; port: number; stderr: () => string }> {
  const fwd = spawnVmlink(['forward', ...args, '--json']);
  let errors = '';
  fwd.child.stderr?.on('data', (t: Buffer) => (errors += t.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    fwd.child.stdout?.on('data', (t: Buffer) => {
      text += t.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0] as string);
    });
    fwd.child.once('exit', (code) => reject(new Error(`forward exited ${code}: ${errors}`)));
  });
  const port = Number((JSON.parse(line) as { listening: string }).listening.split(':').pop());
  return { fwd, port, stderr: () => errors };
}

describe('vmlink forward within the agent default limits (unix)', () => {
  let work: string;
  let svc: Service;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-limits-'));
    svc = await service();
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-forward', `127.0.0.1:${svc.port}`]);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    svc?.server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('100 parallel slow HTTP requests (more than the agent takes at once) all succeed', async () => {
    const { fwd, port, stderr } = await startForward([agent.uri, `0:127.0.0.1:${svc.port}`]);
    try {
      const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => get(port, `/slow${i}`)));
      answers.forEach((a, i) => expect([a.status, a.body]).toEqual([200, `ok /slow${i}`]));
      // They overlapped, and never beyond what the agent takes from one peer.
      expect(svc.peak()).toBeGreaterThan(1);
      expect(svc.peak()).toBeLessThanOrEqual(56);
      expect(stderr()).not.toMatch(/ERR_VMLINK/);
    } finally {
      fwd.child.kill('SIGINT');
    }
    const done = await fwd.done;
    expect(done.code, done.stderr).toBe(0);
  });

  it(`--max-active 1: ${MAX_WAITING_CONNECTIONS} connections wait, more are closed with a log line, the waiting ones are carried later`, async () => {
    const { fwd, port, stderr } = await startForward([agent.uri, `0:127.0.0.1:${svc.port}`, '--max-active', '1']);
    const sockets: Socket[] = [];
    try {
      // The one forward carried: held by the service until released.
      const holding = get(port, '/hold');
      await expect.poll(() => svc.held.length, { timeout: 20_000 }).toBe(1);
      const extra = 3;
      let closed = 0;
      const closedSockets = new Set<Socket>();
      const replies = new Map<Socket, string>();
      await Promise.all(
        Array.from({ length: MAX_WAITING_CONNECTIONS + extra }, () => {
          const socket = connect(port, '127.0.0.1');
          sockets.push(socket);
          socket.on('error', () => undefined);
          socket.on('data', (d: Buffer) => replies.set(socket, (replies.get(socket) ?? '') + d.toString()));
          socket.on('close', () => {
            closed += 1;
            closedSockets.add(socket);
          });
          return new Promise((resolve) => socket.once('connect', resolve));
        }),
      );
      await expect.poll(() => closed, { timeout: 20_000 }).toBe(extra);
      await expect.poll(() => stderr(), { timeout: 20_000 }).toMatch(/closed an accepted connection: 256 already wait/);
      const waiting = sockets.filter((s) => !closedSockets.has(s));
      expect(waiting).toHaveLength(MAX_WAITING_CONNECTIONS);
      waiting.forEach((s, i) => s.write(`GET /w${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
      for (const res of svc.held.splice(0)) res.end('released');
      expect((await holding).body).toBe('released');
      // Each waiting one is carried in its turn (one at a time) and answered in full.
      await Promise.all(waiting.map((s) => new Promise((resolve) => (s.destroyed ? resolve(undefined) : s.once('close', resolve)))));
      waiting.forEach((s, i) => expect(replies.get(s)).toMatch(new RegExp(`ok /w${i}$`)));
    } finally {
      for (const s of sockets) s.destroy();
      fwd.child.kill('SIGINT');
    }
    const done = await fwd.done;
    expect(done.code, done.stderr).toBe(0);
  }, 120_000);
});

describe('forwardRoom (pure)', () => {
  const limits = { maxConnections: 64, maxConnectionsPerPeer: 56, maxStreamsPerConnection: 16, maxForwards: 64 };
  it('is --max-active when given, else the agent room for the transport, else unbounded (learned)', () => {
    expect(forwardRoom(limits, true, 3)).toBe(3);
    expect(forwardRoom(limits, true, undefined)).toBe(56);
    expect(forwardRoom({ ...limits, maxForwards: 20 }, true, undefined)).toBe(20);
    expect(forwardRoom(limits, false, undefined)).toBe(8);
    expect(forwardRoom({ ...limits, maxStreamsPerConnection: 1 }, false, undefined)).toBe(1);
    expect(forwardRoom(undefined, true, undefined)).toBe(Number.POSITIVE_INFINITY);
  });
});
