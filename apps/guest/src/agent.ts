import { connect } from 'node:net';
import { unlink } from 'node:fs/promises';
import { VmlinkError } from '@vmlink/errors';
import { RpcPeer, withBody, type HandlerContext } from '@vmlink/rpc';
import type { Connection, Listener, Transports } from '@vmlink/transport';
import { openFileBackend, type FileBackend } from './aio.js';
import { AgentErrorCode, agentError } from './errors.js';
import { sweepStaleTempFiles } from './methods/files.js';
import { createHandlers, Streamed, type CallContext, type Handler } from './handlers.js';
import type { AgentOptions } from './options.js';
import { RootJail } from './policy/confine.js';
import { ExecPolicy } from './policy/exec-policy.js';
import { METHODS, type MethodName } from './protocol.js';
import type { AgentLogger } from './request-log.js';
import { Channel } from './channel.js';
import { loadInstalledTransports } from '@vmlink/transport';

/** Bad frames tolerated per connection before the agent drops it. */
const MAX_PROTOCOL_WARNINGS = 16;

interface Session {
  readonly peer: string;
  /** Aborted when the connection closes: ends every call of this session, bodies included. */
  readonly closed: AbortController;
  /** Requests of this connection still running (bodies included). */
  active: number;
}

/** The local vsock CID through @vmlink/vsock (throws where AF_VSOCK is missing; info copes). */
async function readVsockCid(): Promise<number | undefined> {
  // A variable specifier: @vmlink/vsock is loaded at run time only, never needed to build.
  const specifier = '@vmlink/vsock';
  const { localCid } = (await import(specifier)) as { localCid?: () => number };
  return localCid?.();
}

/**
 * The running agent: listeners on every --listen URI, one RPC session per Connection,
 * per-connection limits, and a graceful SIGTERM path.
 */
export class Agent {
  private readonly listeners = new Map<string, Listener>();
  private readonly sessions = new Map<Connection, RpcPeer>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Aborted when the shutdown grace runs out: whatever still runs is cut off. */
  private readonly hardStop = new AbortController();
  private shuttingDown: Promise<void> | undefined;
  private nextPeer = 1;
  private readonly handlers: Record<MethodName, Handler>;

  private constructor(
    private readonly options: AgentOptions,
    private readonly log: AgentLogger,
    private readonly transports: Transports,
    private readonly backend: FileBackend,
    jail: RootJail | undefined,
  ) {
    this.handlers = createHandlers({
      jail,
      policy: new ExecPolicy(options.allowExec),
      backend,
      limits: options.limits,
      info: {
        vsockCid: readVsockCid,
        transports: () => this.listening,
        aio: () => backend.name,
        root: jail?.realRoot,
        allowExec: options.allowExec,
      },
    });
  }

  /** Starts serving. Fails only if no URI at all could be listened on. */
  static async start(options: AgentOptions, log: AgentLogger): Promise<Agent> {
    const { transports, failures } = await loadInstalledTransports();
    for (const failure of failures) {
      log.event('transport plugin unavailable', { plugin: failure.plugin, cause: failure.error.message });
    }
    const jail = options.root === undefined ? undefined : await RootJail.create(options.root);
    if (jail) {
      for (const stale of await sweepStaleTempFiles(jail.realRoot)) log.event('removed a stale temp file', { path: stale });
    }
    const backend = await openFileBackend(options.aio);
    const agent = new Agent(options, log, transports, backend, jail);
    for (const uri of options.listen) await agent.listen(uri);
    if (agent.listeners.size === 0) {
      await backend.close();
      throw new VmlinkError('ERR_VMLINK_NO_LISTENER', `could not listen on any of: ${options.listen.join(', ')}`);
    }
    log.event('ready', {
      listening: agent.listening.join(','),
      aio: backend.name,
      root: jail?.realRoot ?? 'none',
      allowExec: options.allowExec.join(',') || 'none',
    });
    return agent;
  }

  get listening(): string[] {
    return [...this.listeners.values()].map((l) => l.address());
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
    listener.on('connection', (connection) => this.serve(connection));
    listener.on('error', (error) => this.log.error('listener error', { uri, cause: error.message }));
    this.log.event('listening', { uri: listener.address() });
  }

  /** A Unix socket left behind by a killed agent is reclaimed if nothing answers on it. */
  private async listenReclaimingStaleSocket(uri: string): Promise<Listener> {
    try {
      return await this.transports.listen(uri);
    } catch (error) {
      if (codeOf(error) !== 'EADDRINUSE' || !uri.startsWith('unix:/')) throw error;
      const socketPath = uri.slice('unix:'.length);
      if (await somethingListens(socketPath)) throw error;
      await unlink(socketPath);
      this.log.event('removed a stale socket', { path: socketPath });
      return this.transports.listen(uri);
    }
  }

  private serve(connection: Connection): void {
    if (this.shuttingDown) {
      connection.destroy();
      return;
    }
    const peerName = `${connection.remoteAddress || connection.transport.name}#${this.nextPeer++}`;
    const limit = this.options.limits.maxConcurrentPerConnection;
    // RPC's own cap only pushes back (it stops reading); ours answers with a clear code.
    const rpc = new RpcPeer(connection, { maxFrameSize: this.options.limits.maxFrameBytes, maxConcurrentRequests: limit * 4 });
    this.sessions.set(connection, rpc);
    const session: Session = { peer: peerName, active: 0, closed: new AbortController() };
    for (const method of METHODS) {
      rpc.handle(method, (params, context) => this.runCall(method, params, context, session));
    }
    let warnings = 0;
    rpc.on('warning', (warning) => {
      warnings += 1;
      this.log.error('protocol error', { peer: peerName, code: warning.code, cause: warning.message });
      // RPC stays in sync after a bad frame; a client that keeps sending them is dropped.
      if (warnings >= MAX_PROTOCOL_WARNINGS) rpc.destroy(warning);
    });
    this.log.event('connected', { peer: peerName });
    connection.once('close', () => {
      session.closed.abort(agentError(AgentErrorCode.CLIENT_GONE, 'the client went away'));
      this.sessions.delete(connection);
      this.log.event('disconnected', { peer: peerName });
    });
  }

  /** One request: limits, the handler, the log line once its body (if any) is done too. */
  private async runCall(method: MethodName, params: unknown, context: HandlerContext, session: Session): Promise<unknown> {
    const started = performance.now();
    const details: Record<string, string | number | boolean> = {};
    session.active += 1;
    let settle!: (outcome: unknown) => void;
    const tracked = new Promise<unknown>((resolve) => (settle = resolve));
    this.inFlight.add(tracked);
    const finish = (error: unknown): void => {
      session.active -= 1;
      this.inFlight.delete(tracked);
      settle(undefined);
      const result = error === undefined ? 'OK' : (codeOf(error) ?? 'ERROR');
      this.log.request({ method, peer: session.peer, durationMs: performance.now() - started, result, detail: details });
    };
    try {
      if (this.shuttingDown) throw agentError(AgentErrorCode.SHUTTING_DOWN, 'the agent is shutting down');
      if (session.active > this.options.limits.maxConcurrentPerConnection) {
        throw agentError(AgentErrorCode.TOO_MANY_STREAMS, `more than ${this.options.limits.maxConcurrentPerConnection} requests in flight on this connection`);
      }
      params ??= {}; // a call without params
      if (typeof params !== 'object' || Array.isArray(params)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `${method}: params must be an object`);
      }
      const signal = AbortSignal.any([context.signal, session.closed.signal, this.hardStop.signal]);
      const ctx: CallContext = {
        peer: session.peer,
        signal,
        body: context.body,
        note: (key, value) => {
          details[key] = value;
        },
      };
      const reply = await this.handlers[method](params as Record<string, unknown>, ctx);
      if (!(reply instanceof Streamed)) {
        finish(undefined);
        return reply;
      }
      const channel = new Channel(() => agentError(AgentErrorCode.CLIENT_GONE, 'the client stopped reading the body'));
      // context.signal may no longer fire once the handler has returned: ours still does.
      if (signal.aborted) channel.abort(signal.reason as Error);
      else signal.addEventListener('abort', () => channel.abort(signal.reason as Error), { once: true });
      // The request is over when the body has been handed to RPC to the last byte (so a
      // shutdown does not end the connection under it), not merely produced.
      reply.produce((chunk) => channel.send(chunk)).then(
        () => {
          channel.end();
          void channel.done.then(() => finish(undefined));
        },
        (error: unknown) => {
          channel.fail(error as Error);
          void channel.done.then(() => finish(error));
        },
      );
      return withBody(reply.result, channel);
    } catch (error) {
      finish(error);
      throw error;
    }
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to the grace period, then
   * aborts what is left (temp files are unlinked, exec children killed) and closes.
   */
  shutdown(): Promise<void> {
    this.shuttingDown ??= this.doShutdown();
    return this.shuttingDown;
  }

  private async doShutdown(): Promise<void> {
    this.log.event('shutting down', { inFlight: this.inFlight.size, graceMs: this.options.limits.shutdownGraceMs });
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
      Promise.allSettled([...this.sessions.values()].map((rpc) => rpc.close())),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 1000);
      }),
    ]);
    clearTimeout(timer);
    for (const connection of this.sessions.keys()) connection.destroy();
    await this.backend.close();
    this.log.event('stopped');
  }
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function somethingListens(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
