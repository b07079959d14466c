import { VmlinkError } from '@vmlink/errors';
import type { Connection } from '@vmlink/transport';
import type { AgentClient, AgentInfo, ExecResult, ListResult, StatResult, TransferResult } from './agent-client.js';
import { loadTransports } from './transports.js';
import {
  CreditGate,
  FrameDecoder,
  FrameType,
  MAX_CHUNK,
  creditPayload,
  encodeFrame,
  encodeJson,
  type Frame,
} from './wire.js';

export interface ConnectOptions {
  /** Connect timeout, and the longest silence tolerated while a watched call runs. */
  readonly timeoutMs: number;
}

const EXEC_RECORD_HEADER = 5;

interface PendingCall {
  readonly method: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly onChunk: ((chunk: Buffer) => Promise<void>) | undefined;
  /** Chunks are handled one after the other; the response waits for the last one. */
  chain: Promise<void>;
  readonly credit: CreditGate;
  /** Silence from the agent counts against this call (not for exec: a command may be quiet). */
  readonly watched: boolean;
}

function connectError(uri: string, cause: Error): VmlinkError {
  const code = (cause as { code?: unknown }).code;
  const timedOut = code === 'ETIMEDOUT' || code === 'ABORT_ERR';
  const invalid = typeof code === 'string' && code.startsWith('ERR_VMLINK_INVALID');
  const ours = timedOut ? 'ERR_VMLINK_TIMEOUT' : invalid ? 'ERR_VMLINK_INVALID_ADDRESS' : 'ERR_VMLINK_UNREACHABLE';
  return new VmlinkError(ours, `cannot connect to ${uri}: ${cause.message}${typeof code === 'string' && !invalid ? ` (${code})` : ''}`, { cause });
}

/** Dials `uri` with every transport plugin that loads here and returns a client. */
export async function connectAgent(uri: string, options: ConnectOptions): Promise<AgentClient> {
  const { transports } = await loadTransports();
  let connection: Connection;
  try {
    connection = await transports.dial(uri, { timeout: options.timeoutMs });
  } catch (error) {
    throw connectError(uri, error as Error);
  }
  return new WireClient(uri, connection, options.timeoutMs);
}

class WireClient implements AgentClient {
  private readonly decoder = new FrameDecoder();
  private readonly calls = new Map<number, PendingCall>();
  private nextId = 1;
  private failure: Error | undefined;
  private lastActivity = performance.now();
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    readonly uri: string,
    private readonly connection: Connection,
    private readonly timeoutMs: number,
  ) {
    connection.on('data', (chunk: Buffer) => {
      this.lastActivity = performance.now();
      try {
        for (const frame of this.decoder.push(chunk)) this.onFrame(frame);
      } catch (error) {
        this.fail(new VmlinkError('ERR_VMLINK_PROTOCOL', `${uri} does not speak the vmlink protocol: ${(error as Error).message}`));
      }
    });
    connection.on('error', (error: Error) => this.fail(this.lost(error.message)));
    connection.on('close', () => this.fail(this.lost('the agent closed the connection')));
    connection.on('end', () => this.fail(this.lost('the agent closed the connection')));
  }

  private lost(why: string): VmlinkError {
    return new VmlinkError('ERR_VMLINK_CONNECTION_LOST', `connection to ${this.uri} lost: ${why}`);
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    clearTimeout(this.watchdog);
    for (const call of this.calls.values()) {
      call.credit.fail(error);
      call.chain.then(() => call.reject(error), () => call.reject(error));
    }
    this.calls.clear();
    this.connection.destroy();
  }

  private armWatchdog(): void {
    if (this.watchdog || this.failure) return;
    const check = (): void => {
      this.watchdog = undefined;
      if (![...this.calls.values()].some((c) => c.watched)) return;
      const silent = performance.now() - this.lastActivity;
      if (silent >= this.timeoutMs) {
        this.fail(new VmlinkError('ERR_VMLINK_TIMEOUT', `no answer from ${this.uri} for ${Math.round(silent)} ms`));
        return;
      }
      this.watchdog = setTimeout(check, this.timeoutMs - silent);
    };
    this.watchdog = setTimeout(check, this.timeoutMs);
  }

  private drained: Promise<void> | undefined;

  /** One shared wait for 'drain', settled by 'close' too: no sender waits on a dead link. */
  private waitDrain(): Promise<void> {
    this.drained ??= new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.connection.off('close', onClose);
        this.drained = undefined;
        resolve();
      };
      const onClose = (): void => {
        this.connection.off('drain', onDrain);
        this.drained = undefined;
        reject(this.failure ?? this.lost('the agent closed the connection'));
      };
      this.connection.once('drain', onDrain);
      this.connection.once('close', onClose);
    });
    return this.drained;
  }

  private async send(frame: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.connection.write(frame)) await this.waitDrain();
  }

  private onFrame(frame: Frame): void {
    const call = this.calls.get(frame.id);
    if (!call) return;
    switch (frame.type) {
      case FrameType.DATA: {
        const onChunk = call.onChunk;
        if (!onChunk) throw new Error(`unexpected body data for ${call.method}`);
        const id = frame.id;
        call.chain = call.chain
          .then(() => onChunk(frame.payload))
          .then(() => this.send(encodeFrame(FrameType.CREDIT, id, creditPayload(1))));
        call.chain.catch((error: unknown) => {
          // The local side failed (disk full...): tell the agent to stop, fail the call.
          this.send(encodeFrame(FrameType.CANCEL, id)).catch(() => undefined);
          this.calls.delete(id);
          call.reject(error as Error);
        });
        return;
      }
      case FrameType.CREDIT:
        call.credit.grant(frame.payload.length >= 4 ? frame.payload.readUInt32BE(0) : 0);
        return;
      case FrameType.RESPONSE: {
        this.calls.delete(frame.id);
        call.credit.fail(new VmlinkError('ERR_VMLINK_CALL_DONE', 'call finished'));
        const outcome = JSON.parse(frame.payload.toString('utf8')) as { ok?: unknown; err?: { code: string; message: string } };
        call.chain.then(
          () => (outcome.err ? call.reject(new VmlinkError(outcome.err.code, outcome.err.message)) : call.resolve(outcome.ok)),
          () => undefined,
        );
        return;
      }
      default:
        throw new Error(`unexpected frame type ${frame.type}`);
    }
  }

  private call<T>(
    method: string,
    params: Record<string, unknown>,
    options: { body?: AsyncIterable<Uint8Array>; onChunk?: (chunk: Buffer) => Promise<void>; watched?: boolean } = {},
  ): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.calls.set(id, {
        method,
        resolve: resolve as (value: unknown) => void,
        reject,
        onChunk: options.onChunk,
        chain: Promise.resolve(),
        credit: new CreditGate(),
        watched: options.watched ?? true,
      });
    });
    this.lastActivity = performance.now();
    this.armWatchdog();
    const request = encodeJson(FrameType.REQUEST, id, { method, params, body: options.body !== undefined });
    this.send(request)
      .then(async () => {
        if (options.body) await this.pumpBody(id, options.body);
      })
      .catch((error: unknown) => {
        const call = this.calls.get(id);
        if (!call) return;
        this.calls.delete(id);
        this.send(encodeFrame(FrameType.CANCEL, id)).catch(() => undefined);
        call.reject(error as Error);
      });
    return result;
  }

  private async pumpBody(id: number, body: AsyncIterable<Uint8Array>): Promise<void> {
    for await (const chunk of body) {
      for (let offset = 0; offset < chunk.length; offset += MAX_CHUNK) {
        const call = this.calls.get(id);
        if (!call) return; // answered early (an error): stop sending
        await call.credit.take();
        await this.send(encodeFrame(FrameType.DATA, id, chunk.subarray(offset, offset + MAX_CHUNK)));
      }
    }
    if (this.calls.has(id)) await this.send(encodeFrame(FrameType.END, id));
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

  async read(path: string, sink: (chunk: Uint8Array) => Promise<void>, onSize?: (size: number) => void): Promise<TransferResult> {
    if (onSize) onSize((await this.stat(path)).size);
    return this.call('fs.read', { path }, { onChunk: sink });
  }

  write(path: string, source: AsyncIterable<Uint8Array>, size: number, sha256: string): Promise<TransferResult> {
    return this.call('fs.write', { path, size, sha256 }, { body: source });
  }

  exec(
    command: string,
    args: readonly string[],
    onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>,
  ): Promise<ExecResult> {
    let pending: Buffer = Buffer.alloc(0);
    const onChunk = async (chunk: Buffer): Promise<void> => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= EXEC_RECORD_HEADER) {
        const length = pending.readUInt32BE(1);
        if (pending.length < EXEC_RECORD_HEADER + length) break;
        const tag = pending.readUInt8(0);
        await onOutput(tag === 2 ? 'stderr' : 'stdout', pending.subarray(EXEC_RECORD_HEADER, EXEC_RECORD_HEADER + length));
        pending = pending.subarray(EXEC_RECORD_HEADER + length);
      }
    };
    return this.call('exec', { command, args: [...args] }, { onChunk, watched: false });
  }

  async close(): Promise<void> {
    clearTimeout(this.watchdog);
    if (this.connection.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.connection.destroy();
        resolve();
      }, 200);
      timer.unref();
      this.connection.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.connection.end();
    });
  }
}
