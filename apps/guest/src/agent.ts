import { connect } from 'node:net';
import { unlink } from 'node:fs/promises';
import { VmlinkError } from '@vmlink/errors';
import type { Connection, Listener, Transports } from '@vmlink/transport';
import { openFileBackend, type FileBackend } from './aio.js';
import { AgentErrorCode, agentError } from './errors.js';
import { sweepStaleTempFiles } from './methods/files.js';
import { createHandlers, type CallContext, type Handler } from './handlers.js';
import type { AgentOptions } from './options.js';
import { RootJail } from './policy/confine.js';
import { ExecPolicy } from './policy/exec-policy.js';
import { METHODS, type MethodName } from './protocol.js';
import type { AgentLogger } from './request-log.js';
import { bindConnection, type Dispatch } from './rpc-binding.js';
import { loadTransports } from './transports.js';

/** The vsock CID, read lazily through @vmlink/vsock when that package can load here. */
async function readVsockCid(): Promise<number | undefined> {
  const vsock = (await import('@vmlink/vsock')) as Record<string, unknown>;
  for (const name of ['getLocalCid', 'localCid', 'getLocalCID']) {
    const fn = vsock[name];
    if (typeof fn === 'function') return (await (fn as () => number | Promise<number>)()) ?? undefined;
  }
  return undefined;
}

/**
 * The running agent: listeners on every --listen URI, one RPC session per Connection,
 * per-connection limits, and a graceful SIGTERM path.
 */
export class Agent {
  private readonly listeners = new Map<string, Listener>();
  private readonly connections = new Set<Connection>();
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
    const { transports, failures } = await loadTransports();
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
    const peer = `${connection.remoteAddress || connection.transport.name}#${this.nextPeer++}`;
    this.connections.add(connection);
    let active = 0;
    const dispatch: Dispatch = async (method, params, io) => {
      const started = performance.now();
      const details: Record<string, string | number | boolean> = {};
      let result = 'OK';
      active += 1;
      const run = (async () => {
        if (this.shuttingDown) throw agentError(AgentErrorCode.SHUTTING_DOWN, 'the agent is shutting down');
        if (active > this.options.limits.maxConcurrentPerConnection) {
          throw agentError(
            AgentErrorCode.TOO_MANY_STREAMS,
            `more than ${this.options.limits.maxConcurrentPerConnection} requests in flight on this connection`,
          );
        }
        const handler = (METHODS as readonly string[]).includes(method) ? this.handlers[method as MethodName] : undefined;
        if (!handler) throw new VmlinkError('ERR_VMLINK_UNKNOWN_METHOD', `unknown method '${method}' (known: ${METHODS.join(', ')})`);
        if (params === null || typeof params !== 'object' || Array.isArray(params)) {
          throw agentError(AgentErrorCode.INVALID_PARAMS, `${method}: params must be an object`);
        }
        const signal = AbortSignal.any([io.signal, this.hardStop.signal]);
        const ctx: CallContext = {
          peer,
          signal,
          body: io.body,
          sendChunk: io.sendChunk,
          note: (key, value) => {
            details[key] = value;
          },
        };
        return handler(params as Record<string, unknown>, ctx);
      })();
      this.inFlight.add(run);
      try {
        return await run;
      } catch (error) {
        result = codeOf(error) ?? 'ERROR';
        throw error;
      } finally {
        active -= 1;
        this.inFlight.delete(run);
        this.log.request({ method, peer, durationMs: performance.now() - started, result, detail: details });
      }
    };
    const session = bindConnection(connection, dispatch, {
      maxParamsBytes: this.options.limits.maxParamsBytes,
      onProtocolError: (error) => this.log.error('protocol error', { peer, code: codeOf(error) ?? 'ERROR', cause: error.message }),
    });
    this.log.event('connected', { peer });
    connection.once('close', () => {
      this.connections.delete(connection);
      session.close();
      this.log.event('disconnected', { peer });
    });
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
    for (const connection of this.connections) connection.end();
    // Give the last responses a moment to flush, then cut whatever is left.
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const connection of this.connections) connection.destroy();
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
