import { VmlinkError } from '@vmlink/errors';
import { RpcError, RpcErrorCode, RpcPeer, createMemoryBudget, encodeFrame, withBody, type HandlerContext, type RpcMemoryBudget } from '@vmlink/rpc';
import type { Readable } from 'node:stream';
import type { Connection, Listener, Transports } from '@vmlink/transport';
import { loadInstalledTransports } from '@vmlink/transport';
import { decideAccess, describePeer, identifyPeer } from './access/peer-access.js';
import { openFileBackend, type FileBackend } from './aio.js';
import { Channel } from './channel.js';
import { AgentErrorCode, agentError } from './errors.js';
import { DetachedRegistry } from './detached/registry.js';
import { createHandlers, Streamed, type CallContext, type Handler } from './handlers.js';
import { ConnectionSlots, defaultPerPeer } from './limits/connection-slots.js';
import { capForOpenFileLimit, readOpenFileLimit } from './limits/fd-limit.js';
import { METHOD_MEMORY_COST, MemoryBudget } from './limits/memory-budget.js';
import { clientLimits } from './info.js';
import { LimitedLog } from './log/limited-log.js';
import { sweepStaleTempFiles } from './methods/files.js';
import { resolveAgentOptions, type AgentOptions, type AgentStartOptions } from './options.js';
import { RootJail } from './policy/confine.js';
import { ExecPolicy } from './policy/exec-policy.js';
import { ForwardPolicy, formatTarget } from './policy/forward-policy.js';
import { ForwardTable } from './methods/forward.js';
import type { RunningCommand } from './methods/exec.js';
import { METHODS, type MethodName } from './protocol.js';
import { createLogger, type AgentLogger } from './request-log.js';

/** Bad frames tolerated per connection before RPC condemns it. */
const MAX_BAD_FRAMES = 16;
/** Limits after which RPC closes the connection itself. */
const CLOSING_LIMITS: ReadonlySet<string> = new Set([RpcErrorCode.IDLE_TIMEOUT, RpcErrorCode.FRAME_TIMEOUT, RpcErrorCode.BAD_FRAMES]);
/** A connection told why it is closed gets this long to read the reason. */
const GOODBYE_MS = 2000;
/**
 * Refusals logged once per connection: a client that repeats a refused call gets its
 * answer every time, the log gets one line.
 */
const REFUSAL_CODES: ReadonlySet<string> = new Set([
  AgentErrorCode.METHOD_BLOCKED,
  AgentErrorCode.EXEC_DENIED,
  AgentErrorCode.FS_DISABLED,
  AgentErrorCode.TOO_MANY_STREAMS,
  AgentErrorCode.BUSY,
  AgentErrorCode.SHUTTING_DOWN,
  AgentErrorCode.PATH_ESCAPE,
  AgentErrorCode.ROOT_PROTECTED,
  AgentErrorCode.FORWARD_DISABLED,
  AgentErrorCode.FORWARD_DENIED,
]);

interface Session {
  /** This connection, for the log: `REMOTE#N`. */
  readonly name: string;
  /** The client (uid:N, cid:N...): fairness and log limits are per client, not per connection. */
  readonly key: string;
  readonly connection: Connection;
  readonly rpc: RpcPeer;
  /** When it last received bytes or finished a request (eviction picks the longest idle). */
  lastActivity: number;
  /** Aborted when the connection closes: ends every call of this session, bodies included. */
  readonly closed: AbortController;
  /** Requests of this connection still running (bodies included). */
  active: number;
  /** Set once the agent decided to drop it: nothing more is logged for it. */
  condemned: boolean;
  /** Refusal codes already logged for this connection. */
  readonly refusalsLogged: Set<string>;
  /** Its forwarded TCP connections: closed with it. */
  readonly forwards: ForwardTable;
  /** Its running commands by id (exec.stdin / exec.signal). */
  readonly commands: Map<string, RunningCommand>;
}

/** The local vsock CID through @vmlink/vsock (throws where AF_VSOCK is missing; info copes). */
async function readVsockCid(): Promise<number | undefined> {
  // A variable specifier: @vmlink/vsock is loaded at run time only, never needed to build.
  const specifier = '@vmlink/vsock';
  const { localCid } = (await import(specifier)) as { localCid?: () => number };
  return localCid?.();
}

/**
 * The running agent: listeners on every --listen URI, access control and limits per
 * connection, one RPC session per admitted Connection, and a graceful SIGTERM path.
 */
export class Agent {
  private readonly listeners = new Map<string, Listener>();
  private readonly sessions = new Map<Connection, Session>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly slots: ConnectionSlots<Connection>;
  /** Refused and dropped connections being told why: a quarter of the cap at most. */
  private readonly lingering: Lingering;
  /** Reservations of streaming requests (half of --memory-budget). */
  private readonly budget: MemoryBudget;
  /** What RPC buffers for all connections together (the other half). */
  private readonly rpcBudget: RpcMemoryBudget;
  /** Lines a client can cause: limited per client. */
  private readonly clientLog: LimitedLog;
  /** "A limit bit": at most one line per kind and interval, whoever caused it. */
  private readonly limitLog: LimitedLog;
  /** Aborted when the shutdown grace runs out: whatever still runs is cut off. */
  private readonly hardStop = new AbortController();
  private shuttingDown: Promise<void> | undefined;
  private nextPeer = 1;
  private readonly handlers: Record<MethodName, Handler>;
  /** Detached processes: the agent's, not a connection's; killed when it shuts down. */
  private readonly detached: DetachedRegistry;

  private constructor(
    private readonly options: AgentOptions,
    private readonly log: AgentLogger,
    private readonly transports: Transports,
    private readonly backend: FileBackend,
    policy: ExecPolicy,
    jail: RootJail | undefined,
    forward: ForwardPolicy,
  ) {
    const limits = options.limits;
    const cap = capForOpenFileLimit(limits.maxConnections, readOpenFileLimit());
    const perPeer =
      limits.maxConnectionsPerPeer === defaultPerPeer(limits.maxConnections) ? defaultPerPeer(cap) : Math.min(limits.maxConnectionsPerPeer, cap);
    if (cap < limits.maxConnections) {
      log.warn('--max-connections lowered to fit the open-file limit', { requested: limits.maxConnections, maxConnections: cap, perPeer, nofile: readOpenFileLimit() ?? 0 });
    }
    this.slots = new ConnectionSlots(cap, perPeer);
    this.lingering = { count: 0, max: Math.max(4, Math.floor(cap / 4)) };
    const half = Math.max(1, Math.floor(limits.memoryBudgetBytes / 2));
    this.budget = new MemoryBudget(half);
    this.rpcBudget = createMemoryBudget(half);
    this.clientLog = new LimitedLog(log);
    this.limitLog = new LimitedLog(log, { burst: 1 });
    this.detached = new DetachedRegistry({
      maxRunning: limits.maxDetached ?? 16,
      maxExited: limits.maxDetachedExited ?? 16,
      outputBytes: limits.detachedOutputBytes ?? 1024 * 1024,
    });
    this.handlers = createHandlers({
      jail,
      policy,
      forward,
      backend,
      limits,
      allowEnv: options.allowEnv ?? [],
      detached: this.detached,
      info: {
        vsockCid: readVsockCid,
        transports: () => this.listening,
        aio: () => backend.name,
        root: jail?.realRoot,
        allowExec: options.allowExec,
        methods: options.access.methods.methods,
        limits: clientLimits({
          maxConnections: cap,
          maxConnectionsPerPeer: perPeer,
          maxStreamsPerConnection: limits.maxConcurrentPerConnection,
          memoryBudgetBytes: limits.memoryBudgetBytes,
          // net.connect takes the client's bytes in its own body (handlers.ts).
          streamsPerForward: 1,
        }),
      },
    });
  }

  /**
   * Starts serving. Fails only if no URI at all could be listened on, or a transport plugin
   * the options name cannot be loaded. As a library: `Agent.start({ listen: ['tcp://...'],
   * transports: [tcp()], access: { trustTransports: ['tcp'] } })`; what is not given takes
   * the CLI's defaults (default deny included), and the log defaults to errors only.
   */
  static async start(input: AgentStartOptions, log: AgentLogger = createLogger({ json: false, quiet: true })): Promise<Agent> {
    const options = resolveAgentOptions(input);
    const { transports, failures, replaced } = await loadInstalledTransports({
      plugins: options.transportModules ?? [],
      transports: options.transports ?? [],
    });
    for (const failure of failures) {
      log.event('transport plugin unavailable', { plugin: failure.plugin, cause: failure.error.message });
    }
    for (const r of replaced) {
      log.event('transport plugin replaced', { plugin: r.plugin, by: r.by, schemes: r.schemes.join(',') });
    }
    const own = transports.transports.slice(0, (options.transports?.length ?? 0) + (options.transportModules?.length ?? 0));
    if (own.length > 0) log.event('own transports', { transports: own.map((t) => `${t.name} (${t.schemes.join(',')}:)`).join(' ') });
    const jail = options.root === undefined ? undefined : await RootJail.create(options.root, { allowHardlinks: options.allowHardlinks });
    if (jail) {
      for (const stale of await sweepStaleTempFiles(jail.realRoot)) log.event('removed a stale temp file', { path: stale });
    }
    const policy = await ExecPolicy.create(options.allowExec, { root: jail?.realRoot });
    for (const name of policy.unresolved) {
      log.warn('allowed command not found', { command: name, code: 'ENOENT', cause: 'not in the fixed exec PATH; exec of it fails with ENOENT' });
    }
    const backend = await openFileBackend(options.aio);
    const forward = new ForwardPolicy(options.allowForward ?? []);
    const agent = new Agent(options, log, transports, backend, policy, jail, forward);
    for (const uri of options.listen) await agent.listen(uri);
    if (agent.listeners.size === 0) {
      await backend.close();
      throw new VmlinkError('ERR_VMLINK_NO_LISTENER', `could not listen on any of: ${options.listen.join(', ')}`);
    }
    const access = options.access;
    log.event('ready', {
      listening: agent.listening.join(','),
      aio: backend.name,
      root: jail?.realRoot ?? 'none',
      allowExec: [...policy.paths.values()].join(',') || 'none',
      allowForward: forward.allowed.map(formatTarget).join(',') || 'none',
      allowUid: access.allowUids.join(','),
      allowCid: access.allowCids === 'any' ? 'any' : access.allowCids.join(','),
      methods: access.methods.methods.join(','),
      maxConnections: agent.slots.max,
    });
    return agent;
  }

  get listening(): string[] {
    return [...this.listeners.values()].map((l) => l.address());
  }

  /** Connections being served right now. */
  get connectionCount(): number {
    return this.sessions.size;
  }

  private async listen(uri: string): Promise<void> {
    let listener: Listener;
    try {
      listener = await this.listenReclaimingStaleSocket(uri);
    } catch (error) {
      // One unavailable channel (no AF_VSOCK in a container, no such virtio port) must not
      // stop the agent from serving the others.
      this.log.error('cannot listen', { uri, code: codeOf(error) ?? 'ERROR', cause: (error as Error).message });
      return;
    }
    this.listeners.set(uri, listener);
    listener.on('connection', (connection) => this.admit(connection));
    // Accept errors (EMFILE, ENFILE) do not end a listener: it accepts again once fds are free.
    listener.on('error', (error) =>
      this.limitLog.error('', 'accept failed', { uri, code: codeOf(error) ?? 'ERROR', cause: error.message, connections: this.sessions.size }),
    );
    this.log.event('listening', { uri: listener.address() });
  }

  /**
   * A Unix socket file left behind by a killed agent is reclaimed by @vmlink/transport-unix
   * (only a socket nobody answers on; never a regular file or a symlink). The socket file
   * is 0600 from the start: only its owner (and root) can connect, SO_PEERCRED is checked on top.
   */
  private listenReclaimingStaleSocket(uri: string): Promise<Listener> {
    const unixFile = uri.startsWith('unix:') && !uri.startsWith('unix:@');
    return this.transports.listen(uri, unixFile ? { reclaimStale: true, mode: 0o600 } : {});
  }

  /** Access control and the connection cap, then serve. */
  private admit(connection: Connection): void {
    const name = `${connection.remoteAddress || connection.transport.name}#${this.nextPeer++}`;
    connection.on('error', () => undefined); // reported through RPC or 'close'; never unhandled
    if (this.shuttingDown) {
      connection.destroy();
      return;
    }
    const identity = identifyPeer(connection);
    const decision = decideAccess(identity, this.options.access);
    if (!decision.allowed) {
      this.clientLog.warn(decision.key, 'connection refused', { peer: name, who: describePeer(identity), code: decision.code, cause: decision.message });
      goodbye(connection, decision.code, decision.message, this.lingering);
      return;
    }
    const admission = this.slots.admit(decision.key);
    if (admission.kind === 'refuse') {
      this.limitLog.warn('', 'connection limit reached', { peer: name, code: AgentErrorCode.TOO_MANY_CONNECTIONS, cause: admission.message });
      goodbye(connection, AgentErrorCode.TOO_MANY_CONNECTIONS, admission.message, this.lingering);
      return;
    }
    if (admission.kind === 'evict') {
      const victim = this.sessions.get(admission.victim);
      this.limitLog.warn('', 'connection limit reached', {
        code: AgentErrorCode.TOO_MANY_CONNECTIONS,
        cause: `closed the longest-idle connection of ${victim?.key ?? '?'} to admit ${name}`,
        connections: this.sessions.size,
      });
      if (victim) this.condemn(victim, AgentErrorCode.TOO_MANY_CONNECTIONS, 'closed: the agent needed this idle connection for a new client (--max-connections)');
      else admission.victim.destroy();
      this.slots.remove(admission.victim);
    }
    this.serve(connection, name, decision.key, describePeer(identity));
  }

  private serve(connection: Connection, name: string, key: string, who: string): void {
    const limits = this.options.limits;
    // RPC's own cap only pushes back (it stops reading); ours answers with a clear code.
    const rpc = new RpcPeer(connection, {
      maxFrameSize: limits.maxFrameBytes,
      maxConcurrentRequests: limits.maxConcurrentPerConnection * 4,
      idleTimeout: limits.idleTimeoutMs,
      frameTimeout: limits.frameTimeoutMs,
      budget: this.rpcBudget,
      maxBadFrames: MAX_BAD_FRAMES,
    });
    const session: Session = {
      name,
      key,
      connection,
      rpc,
      lastActivity: performance.now(),
      active: 0,
      closed: new AbortController(),
      condemned: false,
      refusalsLogged: new Set(),
      forwards: new ForwardTable(),
      commands: new Map(),
    };
    this.sessions.set(connection, session);
    this.slots.add(connection, { peer: key, busy: false, lastActivity: session.lastActivity });
    connection.on('data', () => {
      session.lastActivity = performance.now();
      this.markBusy(session);
    });
    for (const method of METHODS) {
      rpc.handle(method, (params, context) => this.runCall(method, params, context, session));
    }
    // A client's mistakes are warnings (--quiet silences them), limited per client; RPC
    // already coalesces them per connection and stops decoding a condemned one.
    rpc.on('warning', (warning) => {
      if (!session.condemned) this.clientLog.warn(key, 'protocol error', { peer: name, code: warning.code, cause: warning.message });
    });
    rpc.on('limit', (limit) => {
      if (CLOSING_LIMITS.has(limit.code)) session.condemned = true;
      this.limitLog.warn('', 'limit reached', { peer: name, client: key, code: limit.code, cause: limit.message });
    });
    this.clientLog.event(key, 'connected', { peer: name, who });
    connection.once('close', () => {
      session.closed.abort(agentError(AgentErrorCode.CLIENT_GONE, 'the client went away'));
      session.forwards.destroyAll();
      this.sessions.delete(connection);
      this.slots.remove(connection);
      if (!session.condemned) this.clientLog.event(key, 'disconnected', { peer: name });
    });
  }

  /** Drop a connection, telling it why; nothing more is logged for it. */
  private condemn(session: Session, code: AgentErrorCode, message: string): void {
    if (session.condemned) return;
    session.condemned = true;
    session.closed.abort(agentError(code, message));
    session.rpc.removeAllListeners('warning');
    goodbye(session.connection, code, message, this.lingering);
  }

  private markBusy(session: Session): void {
    this.slots.update(session.connection, { peer: session.key, busy: session.active > 0, lastActivity: session.lastActivity });
  }

  /** One request: access, limits, the handler, the log line once its body (if any) is done too. */
  private async runCall(method: MethodName, params: unknown, context: HandlerContext, session: Session): Promise<unknown> {
    const started = performance.now();
    const details: Record<string, string | number | boolean> = {};
    session.active += 1;
    this.markBusy(session);
    let settle!: (outcome: unknown) => void;
    const tracked = new Promise<unknown>((resolve) => (settle = resolve));
    this.inFlight.add(tracked);
    let release: (() => void) | undefined;
    const finish = (error: unknown): void => {
      session.active -= 1;
      release?.();
      session.lastActivity = performance.now();
      this.markBusy(session);
      this.inFlight.delete(tracked);
      settle(undefined);
      const result = error === undefined ? 'OK' : (codeOf(error) ?? 'ERROR');
      if (session.condemned) return;
      if (REFUSAL_CODES.has(result)) {
        if (session.refusalsLogged.has(result)) return;
        session.refusalsLogged.add(result);
      }
      this.clientLog.request(session.key, { method, peer: session.name, durationMs: performance.now() - started, result, detail: details });
    };
    try {
      if (session.condemned) throw agentError(AgentErrorCode.CLIENT_GONE, 'the connection is being closed');
      if (this.shuttingDown) throw agentError(AgentErrorCode.SHUTTING_DOWN, 'the agent is shutting down');
      if (!this.options.access.methods.serves(method)) throw this.options.access.methods.blockedError(method);
      if (session.active > this.options.limits.maxConcurrentPerConnection) {
        throw agentError(AgentErrorCode.TOO_MANY_STREAMS, `more than ${this.options.limits.maxConcurrentPerConnection} requests in flight on this connection`);
      }
      params ??= {}; // a call without params
      if (typeof params !== 'object' || Array.isArray(params)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `${method}: params must be an object, got ${Array.isArray(params) ? 'an array' : typeof params}`);
      }
      const cost = METHOD_MEMORY_COST[method] ?? 0;
      release = this.budget.tryReserve(cost);
      if (release === undefined) {
        this.limitLog.warn('', 'memory budget spent', { code: AgentErrorCode.BUSY, budget: this.budget.limit, inUse: this.budget.inUse, peer: session.name });
        throw agentError(AgentErrorCode.BUSY, `the agent is busy: its memory budget (${this.budget.limit} bytes, --memory-budget) is in use by other requests; retry later`);
      }
      // Aborted when the client stops reading a streamed reply (cancel): see the Channel below.
      const cancelled = new AbortController();
      const signal = AbortSignal.any([context.signal, session.closed.signal, this.hardStop.signal, cancelled.signal]);
      const ctx: CallContext = {
        peer: session.name,
        signal,
        body: context.body,
        note: (key, value) => {
          details[key] = value;
        },
        forwards: session.forwards,
        commands: session.commands,
      };
      const reply = await this.handlers[method](params as Record<string, unknown>, ctx);
      if (!(reply instanceof Streamed)) {
        finish(undefined);
        return reply;
      }
      const channel = new Channel(
        () => agentError(AgentErrorCode.CLIENT_GONE, 'the client stopped reading the body'),
        (reason) => cancelled.abort(reason),
      );
      // context.signal may no longer fire once the handler has returned: ours still does.
      if (signal.aborted) channel.abort(signal.reason as Error);
      else signal.addEventListener('abort', () => channel.abort(signal.reason as Error), { once: true });
      // The request is over when the body has been handed to RPC to the last byte (so a
      // shutdown does not end the connection under it), not merely produced; one that kept
      // its request body (a forward's other direction) also when that body is over, so a
      // forward counts as one stream for its whole life.
      const kept = reply.keepRequestBody ? context.body : undefined;
      let parts = kept ? 2 : 1;
      let failure: unknown;
      const partDone = (error?: unknown): void => {
        failure ??= error;
        if (--parts === 0) finish(failure);
      };
      if (kept) whenBodyOver(kept, () => partDone());
      reply.produce((chunk) => channel.send(chunk)).then(
        () => {
          channel.end();
          void channel.done.then(() => partDone());
        },
        (error: unknown) => {
          channel.fail(toWireError(error));
          void channel.done.then(() => partDone(error));
        },
      );
      return withBody(reply.result, channel, { keepRequestBody: kept !== undefined });
    } catch (error) {
      finish(error);
      throw error;
    }
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to the grace period, then
   * aborts what is left (temp files are unlinked, exec process groups killed) and closes.
   * Detached processes are killed (SIGKILL to each group) at once.
   */
  shutdown(): Promise<void> {
    this.shuttingDown ??= this.doShutdown();
    return this.shuttingDown;
  }

  private async doShutdown(): Promise<void> {
    this.log.event('shutting down', { inFlight: this.inFlight.size, graceMs: this.options.limits.shutdownGraceMs });
    // First: their groups are killed, so open detached.wait/attach calls end now instead of
    // holding the grace period; nobody could reach them after the agent is gone.
    this.detached.shutdown();
    await Promise.allSettled([...this.listeners.values()].map((l) => l.close()));
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.options.limits.shutdownGraceMs);
      });
      const outcome = await Promise.race([Promise.allSettled([...this.inFlight]).then(() => 'done' as const), grace]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        this.log.event('grace period over: aborting requests', { inFlight: this.inFlight.size });
        this.hardStop.abort(agentError(AgentErrorCode.SHUTTING_DOWN, 'the agent shut down before the request finished'));
        await Promise.allSettled([...this.inFlight]);
      }
    }
    // rpc.close() flushes what RPC still queues, ends, and waits for the client to close;
    // a client that never does is cut off after a second.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.sessions.values()].map((s) => s.rpc.close())),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 1000);
      }),
    ]);
    clearTimeout(timer);
    for (const connection of this.sessions.keys()) connection.destroy();
    await this.backend.close();
    this.clientLog.flush();
    this.limitLog.flush();
    this.log.event('stopped');
  }
}

/**
 * `then` once nothing more will come in `body`: its sender's END arrived (RPC's
 * 'received', emitted in frame order, so a client that sends its next request after that
 * END finds the stream free), or it was destroyed here. Called once.
 */
function whenBodyOver(body: Readable, then: () => void): void {
  if (body.destroyed || body.readableEnded) {
    then();
    return;
  }
  let called = false;
  const once = (): void => {
    if (called) return;
    called = true;
    body.off('received', once);
    body.off('close', once);
    then();
  };
  body.on('received', once);
  body.on('close', once);
}

/** Closed connections still being told why (each holds an fd until its client closes). */
interface Lingering {
  count: number;
  readonly max: number;
}

/**
 * Tell a connection why it is being closed (an ERROR frame without an id, which any RPC
 * client reports), end it, and destroy it if the client does not close within
 * GOODBYE_MS. What it still sends is discarded. A flood of refused connections must
 * not hold fds: beyond `lingering.max` at once they are destroyed without a word.
 */
function goodbye(connection: Connection, code: string, message: string, lingering: Lingering): void {
  if (connection.destroyed || lingering.count >= lingering.max) {
    connection.destroy();
    return;
  }
  lingering.count += 1;
  const timer = setTimeout(() => connection.destroy(), GOODBYE_MS);
  timer.unref();
  connection.once('close', () => {
    lingering.count -= 1;
    clearTimeout(timer);
  });
  // Keep reading (and discarding) until the client closes its side: were we to close
  // first, its next write would fail before it read the reason.
  connection.once('end', () => connection.destroy());
  try {
    if (!connection.writableEnded) {
      for (const part of encodeFrame({ type: 'ERROR', id: null, error: { code, message } })) connection.write(part);
      connection.end();
    }
  } catch {
    connection.destroy();
  }
  connection.resume();
}

/**
 * A body that fails mid-way ends with an END frame carrying the error: as an RpcError its
 * own code travels (ERR_VMLINK_EXEC_TIMEOUT, ENOSPC...), not a generic "stream aborted".
 */
function toWireError(error: unknown): Error {
  if (error instanceof RpcError) return error;
  const code = codeOf(error);
  if (code === undefined) return error as Error;
  return new RpcError(code, (error as Error).message, { cause: error });
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
