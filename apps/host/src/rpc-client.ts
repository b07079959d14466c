import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { VmlinkError } from '@vmlink/errors';
import { RpcPeer } from '@vmlink/rpc';
import {
  DetachedAttachCursor,
  DetachedRecordDecoder,
  encodeDetachedAck,
  type DetachedAttachParams,
  type DetachedAttachResult,
  type DetachedMethodTypes,
  type DetachedRecord,
  ExecRecordDecoder,
  ExecRecordTag,
  type ExecExit,
  READ_TRAILER_BYTES,
  type ChmodResult,
  type HashResult,
  type MethodName,
  type MkdirResult,
  type MvResult,
  type PartialResult,
  type ProbeResult,
  type RmResult,
  type UtimesResult,
} from '@vmlink/agent-protocol';
import { loadInstalledTransports, reconnecting, type Connection, type Transport, type Transports } from '@vmlink/transport';
import type { AgentClient, AgentInfo, DetachedCallName, ExecOptions, ListResult, OpenedTcp, StatResult, TransferResult, WriteOptions } from './agent-client.js';

export interface ConnectOptions {
  /** Connect timeout, and the longest silence tolerated while a call runs. */
  readonly timeoutMs: number;
  /** Retry an unreachable agent (booting, restarting) with backoff until `timeoutMs`. */
  readonly wait?: boolean;
  /** Your own transport plugins by module (a package name or a path exporting a factory). */
  readonly transportModules?: readonly string[];
  /** Transports built by the calling program, tried before the first-party ones. */
  readonly transports?: readonly Transport[];
}

/** RPC-level codes turned into the CLI's own (see exit-codes.ts). */
const RPC_CODES: Readonly<Record<string, string>> = {
  ERR_VMLINK_RPC_CLOSED: 'ERR_VMLINK_CONNECTION_LOST',
  ERR_VMLINK_RPC_TIMEOUT: 'ERR_VMLINK_TIMEOUT',
  ERR_VMLINK_RPC_UNKNOWN_METHOD: 'ERR_VMLINK_PROTOCOL',
  ERR_VMLINK_RPC_MALFORMED_FRAME: 'ERR_VMLINK_PROTOCOL',
  ERR_VMLINK_RPC_FRAME_TOO_LARGE: 'ERR_VMLINK_PROTOCOL',
};

function connectError(uri: string, cause: Error): VmlinkError {
  const code = (cause as { code?: unknown }).code;
  const timedOut = code === 'ETIMEDOUT' || code === 'ABORT_ERR';
  const invalid = typeof code === 'string' && code.startsWith('ERR_VMLINK_INVALID');
  // Something answered, but not as the transport's handshake says (a VMM's reply to CONNECT).
  const garbled = code === 'ERR_VMLINK_HVSOCK_BAD_REPLY';
  const ours = timedOut ? 'ERR_VMLINK_TIMEOUT' : invalid ? 'ERR_VMLINK_INVALID_ADDRESS' : garbled ? 'ERR_VMLINK_PROTOCOL' : 'ERR_VMLINK_UNREACHABLE';
  // The code once, at the end, unless the transport's message already names it.
  const named = typeof code === 'string' && !invalid && !cause.message.includes(code) ? ` (${code})` : '';
  return new VmlinkError(ours, `cannot connect to ${uri}: ${cause.message}${named}`, { cause });
}

/** Dials `uri` with every transport plugin that loads here (and the caller's own) and returns a client. */
export async function connectAgent(uri: string, options: ConnectOptions): Promise<AgentClient> {
  const { transports } = await loadInstalledTransports({ plugins: options.transportModules ?? [], transports: options.transports ?? [] });
  const connection = options.wait ? await dialWaiting(transports, uri, options.timeoutMs) : await dialOnce(transports, uri, options.timeoutMs);
  return new RpcAgentClient(uri, connection, options.timeoutMs);
}

async function dialOnce(transports: Transports, uri: string, timeoutMs: number): Promise<Connection> {
  try {
    return await transports.dial(uri, { timeout: timeoutMs });
  } catch (error) {
    throw connectError(uri, error as Error);
  }
}

/**
 * --wait: @vmlink/transport's reconnecting() dials with backoff while nothing listens
 * (an agent booting or restarting) and hands over the first Connection; any other
 * failure (a bad address, a garbled handshake) ends the wait at once. The CLI does not
 * want a second Connection: once one is up the client stops redialing.
 */
async function dialWaiting(transports: Transports, uri: string, timeoutMs: number): Promise<Connection> {
  let resolved;
  try {
    resolved = transports.resolve(uri);
  } catch (error) {
    throw connectError(uri, error as Error);
  }
  let last: Error | undefined;
  const client = reconnecting(resolved.transport, resolved.address, {
    dialTimeout: timeoutMs,
    backoff: { initialDelay: 50, maxDelay: 1000 },
    shouldRetry: (error) => connectError(uri, error).code === 'ERR_VMLINK_UNREACHABLE',
  });
  client.on('retry', ({ error }) => (last = error));
  client.on('error', (error) => (last = error));
  try {
    const connection = await client.waitForConnection({ signal: AbortSignal.timeout(timeoutMs) });
    // Ours now: the client must neither redial when it closes nor destroy it.
    client.removeAllListeners('retry');
    void stopRedialing(client, connection);
    return connection;
  } catch (error) {
    await client.close().catch(() => undefined);
    const code = (error as { code?: unknown }).code;
    if (code === 'ABORT_ERR') {
      const why = last ? `; last attempt: ${last.message}` : '';
      throw new VmlinkError('ERR_VMLINK_TIMEOUT', `cannot connect to ${uri}: nothing answered within ${timeoutMs} ms (--wait)${why}`, { cause: last ?? error });
    }
    throw connectError(uri, (last ?? error) as Error);
  }
}

/** Once the CLI's Connection closes, the reconnecting client stops instead of dialing again. */
async function stopRedialing(client: ReturnType<typeof reconnecting>, connection: Connection): Promise<void> {
  await new Promise<void>((resolve) => {
    if (connection.destroyed) resolve();
    else connection.once('close', () => resolve());
  });
  await client.close().catch(() => undefined);
}

/** How long an attach waits for its last ACK to reach the connection before it returns. */
const LAST_ACK_WAIT_MS = 1000;

/**
 * Resolves once RPC has taken all of `body` (its source read to the end: the last chunk is
 * on the connection, so a close() right after does not lose it), or after `ms` (an agent
 * that stopped granting credit cannot hold the caller).
 */
async function sentOrGivenUp(body: PassThrough, ms: number): Promise<void> {
  if (body.readableEnded) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((resolve) => body.once('end', resolve).once('close', resolve)),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * AgentClient over @vmlink/rpc. Besides RPC's own errors it watches for silence: while a
 * call runs, no byte from the agent for `timeoutMs` fails it with ERR_VMLINK_TIMEOUT.
 * That is how a dead agent behind virtio-serial is noticed (QEMU's chardev socket stays
 * open when the guest process dies). exec is exempt: a command may be quiet for long.
 */
class RpcAgentClient implements AgentClient {
  private readonly rpc: RpcPeer;
  readonly multiConnection: boolean;
  private lastActivity = performance.now();
  private readonly watched = new Set<AbortController>();
  private watchdog: NodeJS.Timeout | undefined;
  /**
   * Why the agent turned this connection away, if it did: it sends an ERROR frame that
   * names no request (peer not allowed, too many connections) and closes. RPC reports
   * that frame as a warning; the calls then fail as "closed", and this gives them the cause.
   */
  private refusal: { code: string; message: string } | undefined;

  constructor(
    readonly uri: string,
    private readonly connection: Connection,
    private readonly timeoutMs: number,
  ) {
    this.rpc = new RpcPeer(connection);
    this.multiConnection = connection.transport.capabilities.multiConnection;
    // A second 'data' listener only observes: RpcPeer reads in flowing mode already.
    connection.on('data', () => {
      this.lastActivity = performance.now();
    });
    this.rpc.on('warning', (warning) => {
      if (warning.remote && this.refusal === undefined) {
        this.refusal = { code: warning.code, message: warning.message };
      }
    });
  }

  get closed(): boolean {
    return this.rpc.closed;
  }

  /** Runs `work` with a signal that the silence watchdog aborts. */
  private async watch<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    this.watched.add(controller);
    this.lastActivity = performance.now();
    this.armWatchdog();
    try {
      return await work(controller.signal);
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason as Error;
      throw this.translate(error);
    } finally {
      this.watched.delete(controller);
    }
  }

  private armWatchdog(): void {
    if (this.watchdog) return;
    const check = (): void => {
      this.watchdog = undefined;
      if (this.watched.size === 0) return;
      const silent = performance.now() - this.lastActivity;
      if (silent >= this.timeoutMs) {
        const error = new VmlinkError('ERR_VMLINK_TIMEOUT', `no answer from ${this.uri} for ${Math.round(silent)} ms`);
        for (const controller of this.watched) controller.abort(error);
        this.rpc.destroy(error);
        return;
      }
      this.watchdog = setTimeout(check, this.timeoutMs - silent);
    };
    this.watchdog = setTimeout(check, this.timeoutMs);
  }

  private translate(error: unknown): Error {
    const code = (error as { code?: unknown }).code;
    const lostConnection = code === 'ERR_VMLINK_RPC_CLOSED' || code === 'ECONNRESET' || code === 'EPIPE';
    if (lostConnection && this.refusal) {
      return new VmlinkError(this.refusal.code, `${this.uri} refused this connection: ${this.refusal.message}`, { cause: error });
    }
    const mapped = typeof code === 'string' ? RPC_CODES[code] : undefined;
    if (!mapped) return error as Error;
    const why = mapped === 'ERR_VMLINK_CONNECTION_LOST' ? `connection to ${this.uri} lost` : `${this.uri}`;
    return new VmlinkError(mapped, `${why}: ${(error as Error).message}`, { cause: error });
  }

  private call<T>(method: MethodName, params: object): Promise<T> {
    return this.watch((signal) => this.rpc.call(method, params, { signal }) as Promise<T>);
  }

  ping(): Promise<{ time: number }> {
    return this.call('ping', {});
  }

  info(): Promise<AgentInfo> {
    return this.call('info', {});
  }

  stat(path: string): Promise<StatResult> {
    return this.call('fs.stat', { path });
  }

  list(path: string): Promise<ListResult> {
    return this.call('fs.list', { path });
  }

  hash(path: string, length: number): Promise<HashResult> {
    return this.call('fs.hash', { path, length });
  }

  partial(path: string, sha256: string): Promise<PartialResult> {
    return this.call('fs.partial', { path, sha256 });
  }

  mkdir(path: string, options: { mode?: number; parents?: boolean } = {}): Promise<MkdirResult> {
    return this.call('fs.mkdir', { path, ...options });
  }

  rm(path: string, options: { recursive?: boolean } = {}): Promise<RmResult> {
    return this.call('fs.rm', { path, ...options });
  }

  mv(from: string, to: string): Promise<MvResult> {
    return this.call('fs.mv', { from, to });
  }

  chmod(path: string, mode: number): Promise<ChmodResult> {
    return this.call('fs.chmod', { path, mode });
  }

  utimes(path: string, mtimeMs: number): Promise<UtimesResult> {
    return this.call('fs.utimes', { path, mtimeMs });
  }

  probe(host: string, port: number): Promise<ProbeResult> {
    return this.call('net.probe', { host, port });
  }

  async openTcp(host: string, port: number): Promise<OpenedTcp> {
    try {
      const { result, body } = await this.rpc.request('net.connect', { host, port });
      const id = (result as { id?: unknown }).id;
      if (typeof id !== 'string' || !body) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `net.connect on ${this.uri}: no id or no body in the reply`);
      return { id, body };
    } catch (error) {
      throw this.translate(error);
    }
  }

  async openTcpDuplex(host: string, port: number, source: AsyncIterable<Uint8Array>): Promise<OpenedTcp> {
    try {
      const { result, body } = await this.rpc.request('net.connect', { host, port }, { body: source });
      const id = (result as { id?: unknown }).id;
      if (typeof id !== 'string' || !body) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `net.connect on ${this.uri}: no id or no body in the reply`);
      return { id, body };
    } catch (error) {
      throw this.translate(error);
    }
  }

  async sendTcp(id: string, source: AsyncIterable<Uint8Array>): Promise<{ bytes: number }> {
    try {
      return (await this.rpc.call('net.send', { id }, { body: source })) as { bytes: number };
    } catch (error) {
      throw this.translate(error);
    }
  }

  read(path: string, sink: (chunk: Uint8Array) => Promise<void>, onSize?: (size: number) => void, offset = 0): Promise<TransferResult> {
    return this.watch(async (signal) => {
      const { result, body } = await this.rpc.request('fs.read', offset > 0 ? { path, offset } : { path }, { signal });
      const size = (result as { size?: unknown }).size;
      if (typeof size !== 'number' || !body) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `fs.read from ${this.uri}: no size or no body in the reply`);
      if (offset > 0 && (result as { offset?: unknown }).offset !== offset) {
        throw new VmlinkError('ERR_VMLINK_PROTOCOL', `fs.read from ${this.uri}: asked to resume at ${offset}, the agent does not resume reads (an older agent?)`);
      }
      onSize?.(size);
      // The trailer covers the whole file: only its sha256 is compared here when resuming (the caller hashes its prefix).
      const hash = createHash('sha256');
      let received = offset;
      const trailer: Buffer[] = [];
      for await (const chunk of body as AsyncIterable<Buffer>) {
        const content = chunk.subarray(0, Math.max(0, size - received));
        if (content.length > 0) {
          hash.update(content);
          await sink(content);
        }
        if (content.length < chunk.length) trailer.push(chunk.subarray(content.length));
        received += chunk.length;
      }
      const announced = Buffer.concat(trailer);
      if (received !== size + READ_TRAILER_BYTES) {
        throw new VmlinkError('ERR_VMLINK_PROTOCOL', `fs.read from ${this.uri}: ${received - offset} body bytes for a ${size}-byte file from ${offset}`);
      }
      const sha256 = hash.digest('hex');
      if (offset > 0) return { size, sha256: announced.toString('hex') };
      if (announced.toString('hex') !== sha256) {
        throw new VmlinkError(
          'ERR_VMLINK_CHECKSUM_MISMATCH',
          `${path}: received bytes hash to ${sha256}, the agent read ${announced.toString('hex')}; the copy was discarded`,
        );
      }
      return { size, sha256 };
    });
  }

  write(path: string, source: AsyncIterable<Uint8Array>, size: number, sha256: string, options: WriteOptions = {}): Promise<TransferResult> {
    // Each chunk the RPC layer pulls means the agent granted credit: that is activity.
    const touch = (): void => {
      this.lastActivity = performance.now();
    };
    async function* observed(): AsyncGenerator<Uint8Array> {
      for await (const chunk of source) {
        touch();
        yield chunk;
      }
    }
    return this.watch((signal) => this.rpc.call('fs.write', { path, size, sha256, ...options }, { signal, body: observed() }) as Promise<TransferResult>);
  }

  async exec(
    command: string,
    args: readonly string[],
    onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>,
    options: ExecOptions = {},
  ): Promise<ExecExit> {
    let body: Readable | undefined;
    let feeding: Promise<unknown> | undefined;
    try {
      const { env, cwd, maxOutput, pty } = options.request ?? {};
      const params = {
        command,
        args: [...args],
        ...(options.stdin ? { stdin: true } : {}),
        ...(pty !== undefined ? { pty } : {}),
        ...(env !== undefined ? { env } : {}),
        ...(cwd !== undefined ? { cwd } : {}),
        ...(maxOutput !== undefined ? { maxOutput } : {}),
      };
      let result: unknown;
      ({ result, body } = await this.rpc.request('exec', params));
      if (!body) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec on ${this.uri}: the reply has no body`);
      const id = (result as { id?: unknown }).id;
      if (typeof id === 'string') {
        // stdin flows while the output does; a command that exits before reading it all just ends it.
        if (options.stdin) feeding = this.rpc.call('exec.stdin', { id }, { body: options.stdin }).catch(() => undefined);
        options.onStarted?.({
          signal: async (name) => {
            await this.rpc.call('exec.signal', { id, signal: name }).catch(() => undefined);
          },
        });
      }
      const decoder = new ExecRecordDecoder();
      let exit: ExecExit | undefined;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        for (const record of decoder.push(chunk)) {
          if (record.tag === ExecRecordTag.EXIT) exit = JSON.parse(record.data.toString('utf8')) as ExecExit;
          else await onOutput(record.tag === ExecRecordTag.STDERR ? 'stderr' : 'stdout', record.data);
        }
      }
      if (!exit) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec on ${this.uri}: the output ended without an exit status`);
      void feeding;
      return exit;
    } catch (error) {
      body?.destroy();
      throw this.translate(error);
    }
  }

  async detached<M extends DetachedCallName>(method: M, params: DetachedMethodTypes[M]['params']): Promise<DetachedMethodTypes[M]['result']> {
    if (method !== 'detached.wait') return this.watch((signal) => this.rpc.call(method, params, { signal }) as Promise<DetachedMethodTypes[M]['result']>);
    try {
      return (await this.rpc.call(method, params)) as DetachedMethodTypes[M]['result'];
    } catch (error) {
      throw this.translate(error);
    }
  }

  async attach(
    params: DetachedAttachParams,
    onStarted: (result: DetachedAttachResult) => void,
    onRecord: (record: DetachedRecord) => Promise<void>,
    options: { readonly writtenAtExit?: boolean } = {},
  ): Promise<void> {
    let body: Readable | undefined;
    // Tells the agent what has been written out (onRecord resolved), so that the next
    // attach after this process dies continues from there, not from what was merely sent.
    const acks = new PassThrough();
    try {
      let result: unknown;
      ({ result, body } = await this.rpc.request('detached.attach', { ...params, ack: true }, { body: acks }));
      if (!body) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `detached.attach on ${this.uri}: the reply has no body`);
      const started = result as DetachedAttachResult;
      onStarted(started);
      // An agent without `start` in its reply does not read acknowledgements.
      const cursor = started.start ? new DetachedAttachCursor(started.start) : undefined;
      if (!cursor) acks.end();
      const decoder = new DetachedRecordDecoder();
      for await (const chunk of body as AsyncIterable<Buffer>) {
        let moved = false;
        for (const record of decoder.push(chunk)) {
          await onRecord(record);
          if (cursor?.advance(record)) moved = true;
        }
        // ACKs are cumulative: one skipped while the agent is slow to read is covered by the next.
        if (cursor && moved && !options.writtenAtExit && !acks.writableNeedDrain) acks.write(encodeDetachedAck(cursor.offsets));
      }
      if (cursor) {
        acks.end(encodeDetachedAck(cursor.offsets));
        await sentOrGivenUp(acks, LAST_ACK_WAIT_MS);
      }
    } catch (error) {
      acks.destroy();
      body?.destroy();
      throw this.translate(error);
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.watchdog);
    if (this.rpc.closed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.rpc.close().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 500);
      }),
    ]);
    clearTimeout(timer);
    this.connection.destroy();
  }

  destroy(): void {
    clearTimeout(this.watchdog);
    if (!this.rpc.closed) this.rpc.destroy();
    this.connection.destroy();
  }
}
