/**
 * net.connect with a request body (info.limits.streamsPerForward 1): one request carries
 * both directions of a forwarded TCP connection, so it is one stream of --max-streams for
 * its whole life, half-closes included. Real agent (vmlink-guest over unix), a real TCP
 * service on loopback, a raw RPC client.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentInfo } from '@vmlink/agent-protocol';
import type { RpcPeer } from '@vmlink/rpc';
import { type AgentProcess, rpcClient, startAgent } from './helpers.js';

const MAX_STREAMS = 2;

/** Input the test controls: push chunks, then end (or fail). */
function input() {
  const queue: (Buffer | null)[] = [];
  let wake: (() => void) | undefined;
  const state = { done: false };
  async function* source(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const next = queue.shift() as Buffer | null;
        if (next === null) return;
        yield next;
      }
    } finally {
      state.done = true;
    }
  }
  const push = (chunk: Buffer | null): void => {
    queue.push(chunk);
    wake?.();
  };
  return { source: source(), push, state };
}

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('net.connect carrying both directions (one request per forward)', () => {
  let work: string;
  let agent: AgentProcess;
  let echo: Server;
  let banner: Server;
  /** What the banner service received from each connection once its client ended. */
  const bannerGot: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-duplex-'));
    echo = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    // Says hello and ends its side at once, then reads what the client still sends.
    banner = createServer({ allowHalfOpen: true }, (socket: Socket) => {
      socket.on('error', () => undefined);
      socket.end('hello\n');
      let got = '';
      socket.setEncoding('utf8').on('data', (t: string) => (got += t));
      socket.on('end', () => bannerGot.push(got));
    });
    await Promise.all([echo, banner].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()))));
    const allow = [echo, banner].map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`).join(',');
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-forward', allow, '--max-streams', String(MAX_STREAMS)]);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    echo?.close();
    banner?.close();
    await rm(work, { recursive: true, force: true });
  });

  const target = (server: Server): { host: string; port: number } => ({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });

  it('info reports streamsPerForward 1; 4 MiB echoed byte-exact through one request; net.send refuses its id', async () => {
    const rpc = await rpcClient(agent.socketPath);
    try {
      const info = (await rpc.call('info')) as AgentInfo;
      expect(info.limits?.streamsPerForward).toBe(1);
      expect(info.limits?.maxStreamsPerConnection).toBe(MAX_STREAMS);
      const data = Buffer.alloc(4 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32BE(i, i);
      async function* source(): AsyncGenerator<Buffer> {
        for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
      }
      const { result, body } = await rpc.request('net.connect', target(echo), { body: source() });
      expect(result).toMatchObject({ id: expect.any(String) });
      // net.send may not write into a forward fed by its net.connect body.
      const send = await rpc.call('net.send', { id: (result as { id: string }).id }, { body: Buffer.from('x') }).catch((error: Error) => error);
      expect(send).toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringMatching(/net.connect request body/) });
      const back = await readAll(body as Readable);
      expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await rpc.close();
    }
  });

  it(`--max-streams ${MAX_STREAMS}: ${MAX_STREAMS} forwards fit on one connection, one more is refused, a half-open one still counts`, async () => {
    const rpc = await rpcClient(agent.socketPath);
    try {
      // Two forwards: one to the banner service (which ends its side at once), one echo.
      const first = input();
      const half = await rpc.request('net.connect', target(banner), { body: first.source });
      const second = input();
      const open = await rpc.request('net.connect', target(echo), { body: second.source });
      // Its target said hello and ended: the response is over, the client's side is not.
      expect((await readAll(half.body as Readable)).toString()).toBe('hello\n');
      const refused = await rpc.request('net.connect', target(echo), { body: input().source }).catch((error: Error) => error);
      expect(refused).toMatchObject({ code: 'ERR_VMLINK_TOO_MANY_STREAMS' });
      // The half-open forward still delivers what the client sends after the target's end.
      first.push(Buffer.from('late words'));
      first.push(null);
      while (!first.state.done) await new Promise((resolve) => setImmediate(resolve));
      // Its END is on the wire before this request: the agent has counted it free.
      const third = await rpc.request('net.connect', target(echo), { body: input().source });
      expect(third.result).toMatchObject({ id: expect.any(String) });
      while (bannerGot.length === 0) await new Promise((resolve) => setImmediate(resolve));
      expect(bannerGot).toEqual(['late words']);
      second.push(Buffer.from('ping'));
      second.push(null);
      expect((await readAll(open.body as Readable)).toString()).toBe('ping');
      (third.body as Readable).destroy();
    } finally {
      await rpc.close();
    }
  });

  it('an older client (net.connect without a body, then net.send) is still served', async () => {
    const rpc: RpcPeer = await rpcClient(agent.socketPath);
    try {
      const { result, body } = await rpc.request('net.connect', target(echo));
      const sent = await rpc.call('net.send', { id: (result as { id: string }).id }, { body: Buffer.from('old style') });
      expect(sent).toEqual({ bytes: 9 });
      expect((await readAll(body as Readable)).toString()).toBe('old style');
    } finally {
      await rpc.close();
    }
  });
});
