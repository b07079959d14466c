import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { describeAgentError, streamsPerForward, type AgentClientLimits } from '@vmlink/agent-protocol';
import { VmlinkError } from '@vmlink/errors';
import type { AgentClient, OpenedTcp } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { exitCodeFor, ExitCode } from '../exit-codes.js';
import type { CliOutput } from '../output.js';

export interface ForwardSpec {
  readonly bindHost: string;
  readonly bindPort: number;
  readonly host: string;
  readonly port: number;
  /** --max-active: forwards carried at once; more wait. Default: the room the agent reports. */
  readonly maxActive?: number;
}

/**
 * Accepted TCP connections that may wait for room beyond the listen backlog; one more is
 * closed with a log line. Each waiting socket is an fd and little memory.
 */
export const MAX_WAITING_CONNECTIONS = 256;
/** The listen backlog (Node's default): connections the kernel queues before we accept them. */
export const LISTEN_BACKLOG = 511;

/**
 * Forwards to carry at once: --max-active, else what the agent says one client may hold
 * (one connection per forward where the transport has many; on the one connection where
 * it has one, --max-streams over the requests a forward holds there: one, or two on
 * older agents; and the forwards its memory budget carries), else no cap (an agent
 * without info.limits: room is then learned from its refusals).
 */
export function forwardRoom(limits: AgentClientLimits | undefined, multiConnection: boolean, maxActive: number | undefined): number {
  if (maxActive !== undefined) return maxActive;
  if (!limits) return Number.POSITIVE_INFINITY;
  const byConnections = multiConnection ? limits.maxConnectionsPerPeer : Math.floor(limits.maxStreamsPerConnection / streamsPerForward(limits));
  return Math.max(1, Math.min(byConnections, limits.maxForwards));
}

/** `[BIND:]LPORT:HOST:PORT` (IPv6 hosts in brackets). Pure; throws a plain Error naming the spec. */
export function parseForwardSpec(text: string): ForwardSpec {
  const parts = text.match(/\[[^\]]*\]|[^:]+/g) ?? [];
  const unbracket = (h: string): string => (h.startsWith('[') ? h.slice(1, -1) : h);
  const port = (p: string | undefined, min: number): number => {
    const n = Number(p);
    if (p === undefined || !/^\d+$/.test(p) || n < min || n > 65535) throw new Error(`'${text}': port '${p ?? ''}' is not ${min}..65535`);
    return n;
  };
  if (parts.length === 3) return { bindHost: '127.0.0.1', bindPort: port(parts[0], 0), host: unbracket(parts[1] as string), port: port(parts[2], 1) };
  if (parts.length === 4) return { bindHost: unbracket(parts[0] as string), bindPort: port(parts[1], 0), host: unbracket(parts[2] as string), port: port(parts[3], 1) };
  throw new Error(`'${text}' is not [BIND:]LOCALPORT:GUESTHOST:GUESTPORT (e.g. 8080:127.0.0.1:80)`);
}

export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An accepted TCP connection's way into the guest: what the forward needs to carry it. */
interface Carried {
  /** Settles when the forwarded connection is over (either side closed or failed). */
  readonly done: Promise<void>;
}

/**
 * One accepted TCP connection carried to the guest, as one request (`streams` 1: the
 * agent's info.limits.streamsPerForward) or two (older agents). Either way what the
 * target sends is piped into the socket (the socket's backpressure pauses the body, whose
 * credit then stalls the agent's reads of the target) and the socket's bytes go to the
 * target (the RPC body's credit pauses the socket). Either side failing closes both.
 * Resolves once the forward is under way; rejects if net.connect fails (the socket is
 * then untouched, so it can be retried). `held` counts the agent's requests open.
 */
function open(socket: Socket, client: AgentClient, spec: ForwardSpec, streams: 1 | 2, held: (delta: 1 | -1) => void = () => undefined): Promise<Carried> {
  const duplex = streams === 1 ? duplexOpener(client) : undefined;
  return duplex ? openDuplex(socket, duplex, spec, held) : openSplit(socket, client, spec, held);
}

/** net.connect with a request body (AgentClient.openTcpDuplex). */
type DuplexOpener = (host: string, port: number, source: AsyncIterable<Uint8Array>) => Promise<OpenedTcp>;

/** The client's one-request forward, if it has one (an AgentClient that predates it takes two requests). */
function duplexOpener(client: AgentClient): DuplexOpener | undefined {
  const opener = (client as { openTcpDuplex?: DuplexOpener }).openTcpDuplex;
  return typeof opener === 'function' ? opener.bind(client) : undefined;
}

/**
 * The socket's bytes, read only once `admitted` says net.connect was answered: a refused
 * one leaves the socket untouched (not one byte taken) for a retry. Its end does not
 * destroy the socket, whose other direction may still carry the reply (a half-close).
 */
async function* socketInput(socket: Socket, admitted: Promise<boolean>): AsyncGenerator<Uint8Array> {
  if (!(await admitted)) return;
  for await (const chunk of socket.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
}

/** Both directions in net.connect (its request body is the socket's bytes): one request of the agent's --max-streams. */
async function openDuplex(socket: Socket, openTcpDuplex: DuplexOpener, spec: ForwardSpec, held: (delta: 1 | -1) => void): Promise<Carried> {
  let admit!: (go: boolean) => void;
  const admitted = new Promise<boolean>((resolve) => (admit = resolve));
  let inputOver!: () => void;
  const sent = new Promise<void>((resolve) => (inputOver = resolve));
  async function* input(): AsyncGenerator<Uint8Array> {
    try {
      yield* socketInput(socket, admitted);
    } finally {
      inputOver();
    }
  }
  let body: Readable;
  try {
    ({ body } = await openTcpDuplex(spec.host, spec.port, input()));
  } catch (error) {
    admit(false);
    throw error;
  }
  admit(true);
  // Over for the agent once its body has ended and our input's END went out (the agent
  // counts the request free as that END arrives, before anything we send after it).
  held(1);
  const bodyError = pipeBodyToSocket(body, socket);
  // A turn of the loop after our input ended: its END frame is queued on the connection by
  // then, ahead of the next forward's net.connect.
  const endQueued = sent.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
  const done = Promise.all([closedEvent(body), endQueued, closedEvent(socket)]).then(() => {
    held(-1);
    const error = bodyError();
    if (error) throw error;
  });
  done.catch(() => undefined); // awaited by the caller; never an unhandled rejection meanwhile
  return { done };
}

/** net.connect for what the target sends, net.send for the socket's bytes (agents without streamsPerForward 1). */
async function openSplit(socket: Socket, client: AgentClient, spec: ForwardSpec, held: (delta: 1 | -1) => void): Promise<Carried> {
  const { id, body } = await client.openTcp(spec.host, spec.port);
  // net.connect is over for the agent when its body has ended, net.send when it is answered.
  held(1);
  body.once('close', () => held(-1));
  const bodyError = pipeBodyToSocket(body, socket);
  held(1);
  // Not the socket itself: its iterator would destroy it at its end, cutting the reply off a client that half-closed.
  const sending = client.sendTcp(id, socketInput(socket, Promise.resolve(true)));
  sending.then(
    () => held(-1),
    () => held(-1),
  );
  const closed = Promise.all([closedEvent(socket), closedEvent(body)]);
  // Over only when both requests are over on the agent too (net.send answered, net.connect's
  // body ended): a shared connection counts on that room for the next forward.
  const done = sending.then(
    async () => {
      await closed;
      const error = bodyError();
      if (error) throw error;
    },
    (error: unknown) => {
      body.destroy();
      socket.destroy();
      throw error;
    },
  );
  done.catch(() => undefined); // awaited by the caller; never an unhandled rejection meanwhile
  return { done };
}

/**
 * What the target sends, piped into the socket, each side's end closing the other. The
 * agent ends the body with an error when the guest side failed mid-way (a reset target, a
 * limit): it closes the socket and is returned by the getter, to fail the forward. A socket
 * closed before the body ended leaves the body unread for good: it is stopped, so the agent
 * ends net.connect (and closes the target) instead of holding it.
 */
function pipeBodyToSocket(body: Readable, socket: Socket): () => Error | undefined {
  let bodyError: Error | undefined;
  body.on('error', (error: Error) => {
    bodyError ??= error;
    socket.destroy();
  });
  socket.once('close', () => body.destroy());
  body.pipe(socket);
  return () => bodyError;
}

function closedEvent(stream: Socket | Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed) resolve();
    else stream.once('close', () => resolve());
  });
}

/** The agent had no room for this forward right now (streams, memory, connections): wait for one to end and retry. */
const ROOM_REFUSALS = new Set(['ERR_VMLINK_TOO_MANY_STREAMS', 'ERR_VMLINK_BUSY', 'ERR_VMLINK_TOO_MANY_CONNECTIONS']);
/** Retries of a forward refused for room while none of ours run (the room is other clients'). */
const ROOM_RETRIES = 10;
const isTooManyStreams = (error: unknown): boolean => ROOM_REFUSALS.has((error as { code?: unknown }).code as string);
const closedAsIdle = (error: unknown): boolean => (error as { code?: unknown }).code === 'ERR_VMLINK_IDLE_TIMEOUT';

/**
 * Forwards over transports with many connections, one agent connection each, at most
 * `room` at once; the rest wait in order (at most MAX_WAITING_CONNECTIONS). A forward
 * the agent refuses for room before it took any byte goes back to the head of the line
 * and the room is learned as what we held then.
 */
export class ForwardQueue {
  private active = 0;
  private readonly waiting: Socket[] = [];
  private stopped = false;
  readonly clients = new Set<AgentClient>();

  constructor(
    private readonly connect: () => Promise<AgentClient>,
    private readonly spec: ForwardSpec,
    private room: number,
    private readonly report: (error: Error) => void,
    private readonly maxWaiting = MAX_WAITING_CONNECTIONS,
    /** Requests a forward takes (the agent's info.limits: streamsPerForward). */
    private readonly streams: 1 | 2 = 2,
  ) {}

  get load(): { carried: number; queued: number; room: number } {
    return { carried: this.active, queued: this.waiting.length, room: this.room };
  }

  /** False when the socket was refused (the queue is full): it is closed. */
  accept(socket: Socket): boolean {
    socket.on('error', () => undefined);
    if (this.active < this.room) {
      this.start(socket);
      return true;
    }
    if (this.waiting.length >= this.maxWaiting) {
      socket.destroy();
      return false;
    }
    this.waiting.push(socket);
    return true;
  }

  private start(socket: Socket): void {
    this.active += 1;
    void this.run(socket).finally(() => {
      this.active -= 1;
      this.next();
    });
  }

  private next(): void {
    while (!this.stopped && this.active < this.room && this.waiting.length > 0) {
      const socket = this.waiting.shift() as Socket;
      if (!socket.destroyed) this.start(socket);
    }
  }

  private async run(socket: Socket): Promise<void> {
    if (this.stopped || socket.destroyed) {
      socket.destroy();
      return;
    }
    let client: AgentClient | undefined;
    let carried: Carried;
    for (let attempt = 0; ; attempt += 1) {
      try {
        client = await this.connect();
        this.clients.add(client);
        carried = await open(socket, client, this.spec, this.streams);
        break;
      } catch (error) {
        if (client) {
          this.clients.delete(client);
          void client.close().catch(() => undefined);
          client = undefined;
        }
        // A connection closed before net.connect was answered while others of ours run is
        // the agent refusing one more (over vsock its TOO_MANY_CONNECTIONS goodbye may not
        // arrive before the close): room too, and the socket is untouched.
        const lostForRoom = (error as { code?: unknown }).code === 'ERR_VMLINK_CONNECTION_LOST' && this.active > 1;
        // The agent closed the new connection as idle before our net.connect reached it (a
        // slow guest, the race of every idle timeout): nothing was taken, dial again.
        if (closedAsIdle(error) && attempt < ROOM_RETRIES && !this.stopped && !socket.destroyed) continue;
        if ((isTooManyStreams(error) || lostForRoom) && !this.stopped && !socket.destroyed) {
          // Refused for room with others of ours running: wait for one of them to end.
          if (this.active > 1) {
            this.room = Math.max(1, this.active - 1);
            this.waiting.unshift(socket);
            return;
          }
          // Other clients hold the room: retry with backoff (~15 s in all), then give up.
          if (attempt < ROOM_RETRIES) {
            await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** attempt)));
            continue;
          }
        }
        socket.destroy();
        this.report(error as Error);
        return;
      }
    }
    try {
      await carried.done;
    } catch (error) {
      socket.destroy();
      this.report(error as Error);
    } finally {
      this.clients.delete(client);
      await client.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    for (const socket of this.waiting.splice(0)) socket.destroy();
    await Promise.allSettled([...this.clients].map((c) => c.close()));
  }
}

/**
 * The one agent connection of a transport that has only one (virtio-serial), shared by
 * every forwarded TCP connection as flow-controlled RPC streams (one request each, or two
 * on older agents), so a stalled one stalls only itself. An open forward keeps it busy,
 * so the agent's --idle-timeout does not close it under a forward; once it is gone anyway
 * (idle between forwards, an agent restart, a lost link) the next TCP connection redials
 * it. The agent takes at most --max-streams requests per connection: a TCP connection
 * that finds no room waits until a forward ends, instead of failing.
 */
export class SharedAgentConnection {
  private client: AgentClient | undefined;
  private dialing: Promise<AgentClient> | undefined;
  /** Forwards holding (or about to hold) requests on the current connection. */
  private inUse = 0;
  /** Our requests (net.connect, and net.send on older agents) the agent has not finished yet, as far as we have heard. */
  private requestsHeld = 0;
  private readonly track = (delta: 1 | -1): void => {
    this.requestsHeld += delta;
  };
  /** How many forwards the agent took at once before refusing one: learned, not configured. */
  private capacity = Number.POSITIVE_INFINITY;
  private readonly waiting: (() => void)[] = [];
  /** One forward opens at a time, so a refusal is known before the next one asks. */
  private opening: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly dial: () => Promise<AgentClient>,
    first: AgentClient,
    /** Told after a redial (the previous connection had closed). */
    private readonly onRedial: () => void = () => undefined,
    /** Forwards at once before any refusal taught us less (forwardRoom). */
    private readonly initialCapacity = Number.POSITIVE_INFINITY,
    private readonly maxWaiting = MAX_WAITING_CONNECTIONS,
    /** Requests a forward takes (the agent's info.limits: streamsPerForward). */
    private readonly streams: 1 | 2 = 2,
  ) {
    this.client = first;
    this.capacity = initialCapacity;
  }

  /** How many forwards are carried (or opening) right now, and how many wait for room. */
  get load(): { carried: number; queued: number } {
    return { carried: this.inUse, queued: this.waiting.length };
  }

  private async current(): Promise<AgentClient> {
    if (this.client && !this.client.closed) return this.client;
    if (!this.dialing) {
      const previous = this.client;
      this.client = undefined;
      void previous?.close().catch(() => undefined);
      this.dialing = this.dial().then(
        (client) => {
          this.client = client;
          this.capacity = this.initialCapacity; // maybe another agent: learn again
          this.dialing = undefined;
          this.onRedial();
          if (this.stopped) void client.close().catch(() => undefined);
          return client;
        },
        (error: unknown) => {
          this.dialing = undefined;
          throw error;
        },
      );
    }
    return this.dialing;
  }

  private acquire(): Promise<void> {
    if (this.inUse < this.capacity) {
      this.inUse += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    this.inUse -= 1;
    while (this.inUse < this.capacity && this.waiting.length > 0) {
      this.inUse += 1;
      this.waiting.shift()?.();
    }
  }

  /** False when the socket was refused (the queue is full): it is closed. */
  accept(socket: Socket, spec: ForwardSpec, report: (error: Error) => void): boolean {
    if (this.inUse >= this.capacity && this.waiting.length >= this.maxWaiting) {
      socket.on('error', () => undefined);
      socket.destroy();
      return false;
    }
    void this.carry(socket, spec, report);
    return true;
  }

  async carry(socket: Socket, spec: ForwardSpec, report: (error: Error) => void): Promise<void> {
    socket.on('error', () => undefined);
    for (let idleRetries = 0; ; ) {
      await this.acquire();
      if (this.stopped || socket.destroyed) {
        this.release();
        socket.destroy();
        return;
      }
      let carried: Carried | undefined;
      const turn = this.opening.then(async () => {
        carried = await open(socket, await this.current(), spec, this.streams, this.track);
      });
      this.opening = turn.catch(() => undefined);
      try {
        await turn;
      } catch (error) {
        this.release();
        // net.connect refused for room: nothing of the socket was taken yet. The agent held
        // --max-streams requests then, at most what we still count (frames arrive in order),
        // one or two per forward: wait for a forward to end, then retry.
        if (isTooManyStreams(error) && this.requestsHeld > 0) {
          this.learnRoom();
          continue;
        }
        // The agent closed the shared connection as idle before our net.connect reached it
        // (the race of every idle timeout): nothing was taken; current() dials a new one.
        if (closedAsIdle(error) && idleRetries < ROOM_RETRIES && !this.stopped && !socket.destroyed) {
          idleRetries += 1;
          continue;
        }
        socket.destroy();
        report(error as Error);
        return;
      }
      try {
        await carried?.done;
      } catch (error) {
        // net.send refused for room (older agents): possible only while the room is unknown
        // (a forward half over let net.connect in). The socket's first bytes may be gone, so
        // this one fails; the next ones wait.
        if (isTooManyStreams(error)) this.learnRoom();
        report(error as Error);
      } finally {
        this.release();
      }
      return;
    }
  }

  private learnRoom(): void {
    this.capacity = Math.min(this.capacity, Math.max(1, Math.floor(this.requestsHeld / this.streams)));
  }

  async close(): Promise<void> {
    this.stopped = true;
    for (const wake of this.waiting.splice(0)) {
      this.inUse += 1; // each woken carry() releases once
      wake();
    }
    await this.client?.close().catch(() => undefined);
  }
}

export function describeError(error: Error): string {
  const code = (error as { code?: unknown }).code;
  const codeText = typeof code === 'string' ? code : 'ERROR';
  const words = describeAgentError(codeText);
  return `${words ? `${words}: ` : ''}${error.message} [${codeText}]`;
}

/**
 * `vmlink forward URI [BIND:]LPORT:HOST:PORT`: listens on the host (127.0.0.1 by default)
 * and carries every accepted connection to HOST:PORT in the guest, which the agent must
 * allow (--allow-forward). One agent connection per TCP connection where the transport
 * has many (unix, vsock, hvsock), all over the one connection where it has one
 * (virtio-serial). Runs until SIGINT/SIGTERM (exit 0).
 */
export async function forwardCommand(
  connect: () => Promise<AgentClient>,
  first: AgentClient,
  spec: ForwardSpec,
  common: CommonOptions,
  out: CliOutput,
  stop: AbortSignal,
): Promise<number> {
  // Refused by policy? Say so now, not at the first connection. A target that is not up yet is only a warning.
  try {
    await first.probe(spec.host, spec.port);
  } catch (error) {
    const code = exitCodeFor((error as { code?: string }).code);
    if (code === ExitCode.POLICY || code === ExitCode.USAGE) throw error;
    out.stderr.write(`vmlink forward: warning: ${formatHostPort(spec.host, spec.port)} in the guest does not accept connections yet: ${describeError(error as Error)}\n`);
  }
  // What the agent lets one client hold (absent from older agents: learned from refusals).
  const limits = await first.info().then(
    (info) => info.limits,
    () => undefined,
  );
  const room = forwardRoom(limits, first.multiConnection, spec.maxActive);
  // One request per forward where the agent says so; older agents need net.connect + net.send.
  const streams = streamsPerForward(limits);
  const redialed = (): void => void out.stderr.write(`vmlink forward ${first.uri}: the agent connection had closed (idle, or the agent restarted); reconnected\n`);
  const report = (error: Error): void => void out.stderr.write(`vmlink forward ${first.uri}: ${describeError(error)}\n`);
  const shared = first.multiConnection ? undefined : new SharedAgentConnection(connect, first, redialed, room, MAX_WAITING_CONNECTIONS, streams);
  // Each TCP connection gets its own agent connection: the first one is not needed (left open it would only idle).
  if (!shared) await first.close().catch(() => undefined);
  const queue = shared ? undefined : new ForwardQueue(connect, spec, room, report, MAX_WAITING_CONNECTIONS, streams);
  let refusedLogged = 0;
  const server: Server = createServer({ allowHalfOpen: true });
  server.on('connection', (socket: Socket) => {
    const taken = shared ? shared.accept(socket, spec, report) : (queue as ForwardQueue).accept(socket);
    if (!taken && refusedLogged++ % 100 === 0) {
      // One line per 100 refusals: a flood must not flood the log too.
      out.stderr.write(
        `vmlink forward ${first.uri}: closed an accepted connection: ${MAX_WAITING_CONNECTIONS} already wait for one of the forwards carried at once (--max-active) to end (${refusedLogged} closed so far)\n`,
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: spec.bindHost, port: spec.bindPort, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: NodeJS.ErrnoException) => {
    throw new VmlinkError('ERR_VMLINK_LOCAL_FILE', `cannot listen on ${formatHostPort(spec.bindHost, spec.bindPort)}: ${error.message}`, { cause: error });
  });
  const address = server.address();
  const local = typeof address === 'object' && address ? formatHostPort(address.address, address.port) : String(address);
  const line = { listening: local, target: formatHostPort(spec.host, spec.port), uri: first.uri, ...(Number.isFinite(room) ? { maxActive: room } : {}) };
  out.stdout.write(common.json ? `${JSON.stringify(line)}\n` : `forwarding ${local} -> ${line.target} in the guest via ${first.uri}\n`);
  await new Promise<void>((resolve) => {
    if (stop.aborted) resolve();
    else stop.addEventListener('abort', () => resolve(), { once: true });
  });
  server.close();
  await queue?.close();
  await shared?.close();
  return ExitCode.OK;
}

/** `30s`, `500ms`, `2m`, `1500`: milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]) * (match[2] === 's' ? 1000 : match[2] === 'm' ? 60_000 : 1);
  return Number.isFinite(n) && n > 0 ? Math.round(n) : undefined;
}

/**
 * `vmlink wait-port URI HOST:PORT --timeout 30s`: returns once the guest service accepts
 * connections (net.probe), probing with backoff; 75 when the time is up; a refusal of the
 * agent's policy ends the wait at once (77).
 */
export async function waitPortCommand(client: AgentClient, host: string, port: number, deadline: number, common: CommonOptions, out: CliOutput): Promise<number> {
  const started = performance.now();
  let delay = 50;
  let last: Error | undefined;
  for (;;) {
    try {
      const result = await client.probe(host, port);
      const seconds = (performance.now() - started) / 1000;
      if (common.json) out.stdout.write(`${JSON.stringify({ ...result, waitedMs: Math.round(seconds * 1000) })}\n`);
      else out.stdout.write(`${formatHostPort(host, port)} in the guest accepts connections (after ${seconds.toFixed(1)} s)\n`);
      return ExitCode.OK;
    } catch (error) {
      const code = exitCodeFor((error as { code?: string }).code);
      if (code === ExitCode.POLICY || code === ExitCode.USAGE || code === ExitCode.CONNECTION_LOST) throw error;
      last = error as Error;
    }
    if (performance.now() + delay >= deadline) {
      throw new VmlinkError('ERR_VMLINK_TIMEOUT', `${formatHostPort(host, port)} in the guest did not accept connections in time; last: ${last ? describeError(last) : 'none'}`, { cause: last });
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(1000, delay * 2);
  }
}
