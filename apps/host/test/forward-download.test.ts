/**
 * Issue 12 §2 over unix on the host: a 256 MiB download through `vmlink forward`, checked
 * by SHA-256 as it streams (never held whole), and a forwarded connection that stays
 * silent for longer than the agent's --idle-timeout is not closed under the client.
 * Real agent, real CLI, real sockets (loopback only).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patternSha256, startHttpService } from './fixtures/http-service.mjs';
import { type AgentProcess, spawnVmlink, startAgent } from './helpers.js';

/** GET through the forward, hashing the body as it arrives. */
function download(port: number, url: string): Promise<{ status: number; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function listeningPort(fwd: ReturnType<typeof spawnVmlink>): Promise<number> {
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    fwd.child.stdout?.on('data', (t: Buffer) => {
      text += t.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0] as string);
    });
    fwd.child.once('exit', (code) => reject(new Error(`forward exited ${code}`)));
  });
  return Number((JSON.parse(line) as { listening: string }).listening.split(':').pop());
}

describe('vmlink forward over unix: a 256 MiB download and a quiet connection past the idle timeout', () => {
  let work: string;
  let service: Server;
  let agent: AgentProcess;
  let fwd: ReturnType<typeof spawnVmlink>;
  let port: number;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-big-'));
    service = await startHttpService();
    const target = `127.0.0.1:${(service.address() as AddressInfo).port}`;
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-forward', target, '--idle-timeout', '1000']);
    fwd = spawnVmlink(['forward', agent.uri, `0:${target}`, '--json']);
    port = await listeningPort(fwd);
  });

  afterAll(async () => {
    fwd?.child.kill('SIGINT');
    const done = await fwd?.done;
    await agent?.stop('SIGKILL');
    service?.close();
    await rm(work, { recursive: true, force: true });
    expect(done?.code, done?.stderr).toBe(0);
  });

  it('carries 256 MiB with the SHA-256 of the service', async () => {
    const got = await download(port, '/big/256');
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(256 * 1024 * 1024);
    expect(got.sha256).toBe(patternSha256(256));
  }, 300_000);

  it('a forwarded connection quiet for 3x the agent idle timeout still works (an open forward is not idle)', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    // Nothing crosses this connection for 3 s while the agent closes idle ones after 1 s.
    await new Promise((r) => setTimeout(r, 3000));
    let text = '';
    socket.setEncoding('utf8').on('data', (t: string) => (text += t));
    const ended = new Promise((resolve) => socket.once('end', resolve));
    socket.write('GET /r/late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await ended;
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(text.endsWith('ok /r/late')).toBe(true);
    expect(agent.log()).not.toMatch(/ERR_VMLINK_IDLE_TIMEOUT/);
  });
});
