/**
 * One forwarded TCP connection is one stream of the agent's --max-streams (issue #12):
 * over the one shared agent connection of a one-connection transport (virtio-serial; the
 * same code driven here over a real unix agent), an agent with --max-streams N carries N
 * forwarded connections open at once, sized from what its info reports. (Before, each
 * forward held net.connect + net.send, and only N/2 fitted.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { streamsPerForward } from '@vmlink/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '../src/agent-client.js';
import type { AgentClientLimits } from '@vmlink/agent-protocol';
import { forwardRoom, SharedAgentConnection, type ForwardSpec } from '../src/commands/forward.js';
import { connectAgent } from '../src/rpc-client.js';
import { type AgentProcess, startAgent } from './helpers.js';

const MAX_STREAMS = 4;

/** A TCP echo service that counts the connections it holds. */
function echoService(): Promise<{ server: Server; port: number; open: () => number }> {
  let open = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    open += 1;
    socket.once('close', () => (open -= 1));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, open: () => open })));
}

/** A forwarded connection that said `text` and got it echoed back (held open afterwards). */
function echoed(port: number, text: string): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(text);
  const answer = new Promise<string>((resolve, reject) => {
    let got = '';
    socket.setEncoding('utf8').on('data', (t: string) => {
      got += t;
      if (got.length >= text.length) resolve(got);
    });
    socket.once('close', () => reject(new Error(`'${text}': closed before its echo (got '${got}')`)));
  });
  answer.catch(() => undefined);
  return { socket, answer };
}

/** `promise`, or a rejection naming `what` after `ms` (a liveness limit, not a speed check). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Says hello and ends its side at once, then keeps what the client still sends. */
function bannerService(): Promise<{ server: Server; port: number; got: string[] }> {
  const got: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.end('hello\n');
    let text = '';
    socket.setEncoding('utf8').on('data', (t: string) => (text += t));
    socket.on('end', () => got.push(text));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, got })));
}

describe(`one forwarded connection = one stream: --max-streams ${MAX_STREAMS}, one shared agent connection`, () => {
  let work: string;
  let service: Awaited<ReturnType<typeof echoService>>;
  let agent: AgentProcess;
  let spec: ForwardSpec;
  let banner: Awaited<ReturnType<typeof bannerService>>;

  /** A shared agent connection as `vmlink forward` makes it, carrying `forward` (default: the echo service) on a local port. */
  async function forwarder(forward: ForwardSpec = spec, streams?: 1 | 2) {
    const dial = (): Promise<AgentClient> => connectAgent(agent.uri, { timeoutMs: 20_000 });
    const first = await dial();
    const limits = (await first.info()).limits;
    const perForward = streams ?? streamsPerForward(limits);
    const room = forwardRoom(perForward === 2 ? { ...(limits as AgentClientLimits), streamsPerForward: undefined } : limits, false, undefined);
    const shared = new SharedAgentConnection(dial, first, undefined, room, undefined, perForward);
    const errors: Error[] = [];
    const server = createServer({ allowHalfOpen: true }, (socket) => void shared.carry(socket, forward, (error) => errors.push(error)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const close = async (): Promise<void> => {
      server.close();
      await shared.close();
    };
    return { shared, errors, room, port: (server.address() as AddressInfo).port, close };
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-forward-streams-'));
    service = await echoService();
    banner = await bannerService();
    spec = { bindHost: '127.0.0.1', bindPort: 0, host: '127.0.0.1', port: service.port };
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-forward', `127.0.0.1:${service.port},127.0.0.1:${banner.port}`, '--max-streams', String(MAX_STREAMS)]);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    service?.server.close();
    banner?.server.close();
    await rm(work, { recursive: true, force: true });
  });

  it(`carries ${MAX_STREAMS} connections open at once, sized from info; one more waits for one of them to close`, async () => {
    const dial = (): Promise<AgentClient> => connectAgent(agent.uri, { timeoutMs: 20_000 });
    const first = await dial();
    const info = await first.info();
    // What `vmlink forward` does on a one-connection transport.
    const room = forwardRoom(info.limits, false, undefined);
    expect(room).toBe(MAX_STREAMS);
    const shared = new SharedAgentConnection(dial, first, undefined, room, undefined, streamsPerForward(info.limits));
    const errors: Error[] = [];
    const server = createServer({ allowHalfOpen: true }, (socket) => void shared.carry(socket, spec, (error) => errors.push(error)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    const held: Socket[] = [];
    try {
      const open = Array.from({ length: MAX_STREAMS }, (_, i) => echoed(port, `hello ${i}`));
      held.push(...open.map((o) => o.socket));
      // Every one answers while all of them stay open.
      const answers = await within(Promise.all(open.map((o) => o.answer)), 30_000, `${MAX_STREAMS} forwarded connections held open at once`);
      answers.forEach((answer, i) => expect(answer).toBe(`hello ${i}`));
      expect(service.open()).toBe(MAX_STREAMS);
      expect(shared.load).toEqual({ carried: MAX_STREAMS, queued: 0 });
      // The room is exactly --max-streams: one more waits (not refused) ...
      const extra = echoed(port, 'one more');
      held.push(extra.socket);
      while (shared.load.queued === 0) await new Promise((resolve) => setImmediate(resolve));
      // ... and is carried once one of the others closes.
      open[0]?.socket.end();
      expect(await within(extra.answer, 30_000, 'the waiting connection')).toBe('one more');
      expect(errors).toEqual([]);
      expect(agent.log()).not.toMatch(/ERR_VMLINK_TOO_MANY_STREAMS/);
    } finally {
      for (const socket of held) socket.destroy();
      server.close();
      await shared.close();
    }
  });

  it.each([1, 2] as const)('half-closes cross both ways (%i request(s) per forward): a client that ends its side gets the whole reply; a target that ended first still gets what the client sends', async (streams) => {
    banner.got.length = 0;
    const fwd = await forwarder(spec, streams);
    try {
      // The client says its piece and ends its side, then reads the echo to its end.
      const socket = connect(fwd.port, '127.0.0.1');
      socket.end('all I have to say');
      let echoedText = '';
      socket.setEncoding('utf8').on('data', (t: string) => (echoedText += t));
      await within(new Promise((resolve) => socket.once('end', resolve)), 30_000, 'the echo after a half-close');
      expect(echoedText).toBe('all I have to say');
      socket.destroy();
      // The target ends first; the client reads that, then still sends.
      const toBanner = await forwarder({ ...spec, port: banner.port }, streams);
      try {
        const client = connect({ port: toBanner.port, host: '127.0.0.1', allowHalfOpen: true });
        let heard = '';
        client.setEncoding('utf8').on('data', (t: string) => (heard += t));
        await within(new Promise((resolve) => client.once('end', resolve)), 30_000, "the banner's end");
        expect(heard).toBe('hello\n');
        client.end('said after your end');
        await within(new Promise((resolve) => client.once('close', resolve)), 30_000, 'the close');
        while (banner.got.length === 0) await new Promise((resolve) => setImmediate(resolve));
        expect(banner.got).toEqual(['said after your end']);
        expect(toBanner.errors).toEqual([]);
      } finally {
        await toBanner.close();
      }
      expect(fwd.errors).toEqual([]);
    } finally {
      await fwd.close();
    }
  });

  it(`48 connections through room for ${MAX_STREAMS}: each forward frees its stream as it ends, the agent never refuses one`, async () => {
    const fwd = await forwarder();
    try {
      const runs = Array.from({ length: 48 }, async (_, i) => {
        const { socket, answer } = echoed(fwd.port, `n${i}`);
        const text = await answer;
        socket.end();
        await new Promise((resolve) => socket.once('close', resolve));
        return text;
      });
      const texts = await within(Promise.all(runs), 60_000, '48 forwarded connections');
      texts.forEach((text, i) => expect(text).toBe(`n${i}`));
      expect(fwd.errors).toEqual([]);
      expect(agent.log()).not.toMatch(/ERR_VMLINK_TOO_MANY_STREAMS/);
    } finally {
      await fwd.close();
    }
  });

  it('an agent without streamsPerForward (older) gets net.connect + net.send: room for half as many, and they work', async () => {
    const limits: AgentClientLimits = { maxConnections: 64, maxConnectionsPerPeer: 56, maxStreamsPerConnection: MAX_STREAMS, maxForwards: 64 };
    expect(streamsPerForward(limits)).toBe(2);
    expect(forwardRoom(limits, false, undefined)).toBe(MAX_STREAMS / 2);
    expect(streamsPerForward({ ...limits, streamsPerForward: 1 })).toBe(1);
    expect(forwardRoom({ ...limits, streamsPerForward: 1 }, false, undefined)).toBe(MAX_STREAMS);
    // The split path, as a new host takes it with an older agent, against this agent (which serves both).
    const fwd = await forwarder(spec, 2);
    try {
      expect(fwd.room).toBe(MAX_STREAMS / 2);
      const open = Array.from({ length: MAX_STREAMS / 2 }, (_, i) => echoed(fwd.port, `old ${i}`));
      const answers = await within(Promise.all(open.map((o) => o.answer)), 30_000, 'split forwards');
      answers.forEach((answer, i) => expect(answer).toBe(`old ${i}`));
      for (const o of open) o.socket.destroy();
      expect(fwd.errors).toEqual([]);
    } finally {
      await fwd.close();
    }
  });
});
