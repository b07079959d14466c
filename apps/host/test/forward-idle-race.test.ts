/**
 * The race of every idle timeout, for `vmlink forward` over a many-connection transport:
 * the agent closes a new connection as idle (ERR_VMLINK_IDLE_TIMEOUT) before our first
 * frame reached it (a slow guest; CI saw it over vsock under load). Nothing of the TCP
 * client was taken, so the forward dials again instead of dropping the connection.
 * Real parts: the real agent on a unix socket, a unix proxy in front of it that holds the
 * client's bytes of its FIRST connection past the agent's --idle-timeout, real TCP.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForwardQueue, type ForwardSpec } from '../src/commands/forward.js';
import { connectAgent } from '../src/rpc-client.js';
import { type AgentProcess, startAgent } from './helpers.js';

const IDLE_TIMEOUT_MS = 300;

function listen(server: Server, ...where: [number, string] | [string]): Promise<void> {
  return new Promise((resolve) => server.listen(...(where as [number, string]), () => resolve()));
}

describe('vmlink forward: a connection the agent closed as idle before our first frame is dialed again', () => {
  let work: string;
  let agent: AgentProcess;
  let echo: Server;
  let proxy: Server;
  let proxied = 0;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-idle-'));
    echo = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await listen(echo, 0, '127.0.0.1');
    const echoPort = (echo.address() as AddressInfo).port;
    const agentPath = path.join(work, 'agent.sock');
    agent = await startAgent(agentPath, ['--allow-forward', `127.0.0.1:${echoPort}`, '--idle-timeout', String(IDLE_TIMEOUT_MS)]);
    // The first connection's client -> agent bytes wait until the agent has closed it as idle.
    proxy = createServer((client: Socket) => {
      const first = proxied === 0;
      proxied += 1;
      const upstream = connect(agentPath);
      for (const s of [client, upstream]) s.on('error', () => undefined);
      upstream.pipe(client);
      if (!first) client.pipe(upstream);
      else upstream.once('close', () => client.destroy());
      client.once('close', () => upstream.destroy());
    });
    await listen(proxy, path.join(work, 'proxy.sock'));
  }, 60_000);

  afterAll(async () => {
    proxy?.close();
    echo?.close();
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('the TCP client gets its echo through the second agent connection; nothing is reported', async () => {
    const spec: ForwardSpec = { bindHost: '127.0.0.1', bindPort: 0, host: '127.0.0.1', port: (echo.address() as AddressInfo).port };
    const reported: Error[] = [];
    const queue = new ForwardQueue(() => connectAgent(`unix:${path.join(work, 'proxy.sock')}`, { timeoutMs: 20_000 }), spec, 4, (e) => reported.push(e), 16, 1);
    const local = createServer((socket) => queue.accept(socket));
    await listen(local, 0, '127.0.0.1');
    try {
      const client = connect((local.address() as AddressInfo).port, '127.0.0.1');
      client.on('error', () => undefined);
      client.write('ping through a redial');
      const answer = await new Promise<string>((resolve, reject) => {
        let got = '';
        client.setEncoding('utf8').on('data', (t: string) => {
          got += t;
          if (got.length >= 'ping through a redial'.length) resolve(got);
        });
        client.once('close', () => reject(new Error(`closed before the echo (got '${got}'); reported: ${reported.map((e) => e.message).join('; ')}`)));
      });
      expect(answer).toBe('ping through a redial');
      expect(proxied).toBeGreaterThanOrEqual(2);
      expect(agent.log()).toMatch(/IDLE_TIMEOUT/);
      expect(reported).toEqual([]);
      client.destroy();
    } finally {
      local.close();
      for (const c of queue.clients) await c.close().catch(() => undefined);
    }
  }, 60_000);
});
