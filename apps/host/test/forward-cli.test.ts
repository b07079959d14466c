/**
 * Issue 12 §2 over unix on the host: `vmlink forward` carrying node:http traffic to a
 * service "in the guest" (the agent's side of loopback), `vmlink wait-port`, and the
 * refusals. Real agent, real CLI, real sockets (loopback only).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import { type AgentProcess, runVmlink, spawnVmlink, startAgent } from './helpers.js';

const BIG = randomBytes(32 * 1024 * 1024);
const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

function httpService(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/big') res.end(BIG);
    else res.end(`ok ${req.url}`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function get(port: number, url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function rssKiB(pid: number): Promise<number> {
  return Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

describe('vmlink forward and wait-port against vmlink-guest over unix', () => {
  let work: string;
  let service: Server;
  let servicePort: number;
  let agent: AgentProcess;
  /** A free port, allowed, where a service starts only later. */
  let latePort: number;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-'));
    service = await httpService();
    servicePort = (service.address() as AddressInfo).port;
    const probe = await httpService();
    latePort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-forward', `127.0.0.1:${servicePort},127.0.0.1:1`, '--allow-forward', `127.0.0.1:${latePort}`]);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    service?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('carries 100 parallel HTTP requests, a 32 MiB download by SHA-256, and others flow past a stalled reader', async () => {
    const fwd = spawnVmlink(['forward', agent.uri, `0:127.0.0.1:${servicePort}`, '--json']);
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let text = '';
        fwd.child.stdout?.on('data', (t: Buffer) => {
          text += t.toString();
          if (text.includes('\n')) resolve(text.split('\n')[0] as string);
        });
        fwd.child.once('exit', (code) => reject(new Error(`forward exited ${code}`)));
      });
      const port = Number((JSON.parse(line) as { listening: string }).listening.split(':').pop());

      const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => get(port, `/r${i}`)));
      answers.forEach((a, i) => expect([a.status, a.body.toString()]).toEqual([200, `ok /r${i}`]));

      const big = await get(port, '/big');
      expect(big.body.length).toBe(BIG.length);
      expect(sha(big.body)).toBe(sha(BIG));

      // A client that asks for 32 MiB and never reads: its stream stalls, the others flow,
      // and the agent does not buffer the rest (flow control all the way to the service).
      const before = await rssKiB(agent.child.pid as number);
      const stalled = connect(port, '127.0.0.1');
      stalled.pause();
      stalled.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await new Promise((r) => setTimeout(r, 1000));
      const during = await Promise.all(Array.from({ length: 20 }, (_, i) => get(port, `/s${i}`)));
      during.forEach((a, i) => expect(a.body.toString()).toBe(`ok /s${i}`));
      const after = await rssKiB(agent.child.pid as number);
      expect(after - before).toBeLessThan(24 * 1024);
      stalled.destroy();
    } finally {
      fwd.child.kill('SIGINT');
    }
    const done = await fwd.done;
    expect(done.code, done.stderr).toBe(0);
  });

  it('refuses targets the agent does not allow, in words, with 77', async () => {
    const denied = await runVmlink(['forward', agent.uri, '0:127.0.0.1:22']);
    expect(denied.code).toBe(ExitCode.POLICY);
    expect(denied.stderr).toMatch(/forward not allowed: .*127\.0\.0\.1:22 not allowed .*\[ERR_VMLINK_FORWARD_DENIED\]/);
    const agentOff = await startAgent(path.join(work, 'off.sock'), []);
    try {
      const off = await runVmlink(['wait-port', agentOff.uri, `127.0.0.1:${servicePort}`]);
      expect(off.code).toBe(ExitCode.POLICY);
      expect(off.stderr).toMatch(/port forwarding is not enabled on this agent.*\[ERR_VMLINK_FORWARD_DISABLED\]/);
    } finally {
      await agentOff.stop('SIGKILL');
    }
    const bad = await runVmlink(['forward', agent.uri, '8080']);
    expect(bad.code).toBe(ExitCode.USAGE);
    expect(bad.stderr).toMatch(/is not \[BIND:\]LOCALPORT:GUESTHOST:GUESTPORT/);
  });

  it('wait-port returns once the service is up, and times out with 75 when it never is', async () => {
    const up = await runVmlink(['wait-port', agent.uri, `127.0.0.1:${servicePort}`]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/accepts connections/);
    // The service comes up while wait-port is waiting.
    const waiting = spawnVmlink(['wait-port', agent.uri, `127.0.0.1:${latePort}`, '--timeout', '60s']);
    await new Promise((r) => setTimeout(r, 1500));
    expect(waiting.child.exitCode).toBeNull();
    const late = createServer((_req, res) => res.end('late'));
    await new Promise<void>((resolve) => late.listen(latePort, '127.0.0.1', () => resolve()));
    try {
      const done = await waiting.done;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toContain(`127.0.0.1:${latePort} in the guest accepts connections`);
    } finally {
      late.close();
    }
    // Port 1: allowed, nobody listens.
    const never = await runVmlink(['wait-port', agent.uri, '127.0.0.1:1', '--timeout', '1500ms']);
    expect(never.code).toBe(ExitCode.TIMEOUT);
    expect(never.stderr).toMatch(/did not accept connections in time; last: .*ECONNREFUSED/);
  });
});
