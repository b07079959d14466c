/**
 * The shared agent connection `vmlink forward` uses on a transport with one connection
 * (virtio-serial), driven here over a real unix agent so it runs in `npm test`: TCP
 * connections beyond the agent's --max-streams room wait for a forward to end instead of
 * failing, and a connection the agent idle-closed is redialed for the next one. These
 * take the two-request path (net.connect + net.send), what a host does with an agent that
 * does not report streamsPerForward, with the room unknown (learned from refusals); the
 * one-request path: forward-streams.test.ts. (The same over real virtio-serial:
 * forward.vm.test.ts.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request, type Server } from 'node:http';
import { createServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '../src/agent-client.js';
import { SharedAgentConnection, type ForwardSpec } from '../src/commands/forward.js';
import { connectAgent } from '../src/rpc-client.js';
import { startHttpService } from './fixtures/http-service.mjs';
import { type AgentProcess, startAgent } from './helpers.js';

function get(port: number, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (t: string) => (body += t));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('vmlink forward: the shared agent connection (one-connection transports)', () => {
  let work: string;
  let service: Server;
  let spec: ForwardSpec;
  let agent: AgentProcess;
  /** Most TCP connections the service had open at once. */
  let peak = 0;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-shared-'));
    service = await startHttpService();
    let open = 0;
    service.on('connection', (socket) => {
      open += 1;
      peak = Math.max(peak, open);
      socket.once('close', () => (open -= 1));
    });
    const port = (service.address() as AddressInfo).port;
    spec = { bindHost: '127.0.0.1', bindPort: 0, host: '127.0.0.1', port };
    // Room for 2 forwards (4 requests) per connection; idle connections closed after 1 s.
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-forward', `127.0.0.1:${port}`, '--max-streams', '4', '--idle-timeout', '1000']);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    service?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function listen(shared: SharedAgentConnection, errors: Error[]): Promise<{ server: NetServer; port: number }> {
    const server = createServer({ allowHalfOpen: true }, (socket) => void shared.carry(socket, spec, (error) => errors.push(error)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return { server, port: (server.address() as AddressInfo).port };
  }

  it('12 parallel requests through room for 2: once the room is learned the rest wait their turn and none fails', async () => {
    const dial = (): Promise<AgentClient> => connectAgent(agent.uri, { timeoutMs: 20_000 });
    const shared = new SharedAgentConnection(dial, await dial());
    const errors: Error[] = [];
    const { server, port } = await listen(shared, errors);
    const wave = (name: string): Promise<(string | Error)[]> =>
      Promise.all(Array.from({ length: 12 }, (_, i) => get(port, `/${name}/${i}`).catch((error: Error) => error)));
    try {
      // First wave: the agent's room is unknown; its refusals teach it. A forward half
      // over (net.connect ended, net.send not yet) can let a net.connect in whose net.send
      // is then refused: such a connection fails, reported with the agent's code. (The
      // room could be known up front if the agent's info said --max-streams.)
      const first = await wave('first');
      const failed = first.filter((a) => a instanceof Error).length;
      expect(errors.length).toBe(failed);
      for (const error of errors) expect(error).toMatchObject({ code: 'ERR_VMLINK_TOO_MANY_STREAMS' });
      expect(agent.log()).toMatch(/ERR_VMLINK_TOO_MANY_STREAMS/);
      // Second wave: at most 2 at once, the others queued, every one answered.
      peak = 0;
      errors.length = 0;
      const second = await wave('second');
      second.forEach((body, i) => expect(body).toBe(`ok /second/${i}`));
      expect(errors).toEqual([]);
      expect(peak).toBeLessThanOrEqual(2);
      expect(peak).toBeGreaterThan(0);
    } finally {
      server.close();
      await shared.close();
    }
  });

  it('after the agent idle-closed the connection, the next TCP connection redials', async () => {
    const dial = (): Promise<AgentClient> => connectAgent(agent.uri, { timeoutMs: 20_000 });
    const first = await dial();
    let redials = 0;
    const shared = new SharedAgentConnection(dial, first, () => (redials += 1));
    const errors: Error[] = [];
    const { server, port } = await listen(shared, errors);
    try {
      expect(await get(port, '/r/before')).toBe('ok /r/before');
      // Nothing open: the agent closes the connection after 1-2 s.
      while (!first.closed) await new Promise((r) => setTimeout(r, 50));
      expect(await get(port, '/r/after')).toBe('ok /r/after');
      expect(redials).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      server.close();
      await shared.close();
    }
  });
});
