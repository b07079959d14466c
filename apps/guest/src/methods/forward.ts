import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { ConnectResult, ProbeResult, SendResult } from '@vmlink/agent-protocol';
import { AgentErrorCode, agentError } from '../errors.js';
import type { ForwardTarget } from '../policy/forward-policy.js';
import { formatTarget } from '../policy/forward-policy.js';
import { describeValue } from '../policy/exec-policy.js';

/** Sends one chunk and resolves when the client can take more (the reply body's flow control). */
export type ChunkSink = (chunk: Uint8Array) => Promise<void>;

/** Connects to an allowed target; errors are the connect's own (ECONNREFUSED...) naming the target. */
export function dialTarget(target: ForwardTarget, signal: AbortSignal, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const timer = setTimeout(() => fail(Object.assign(new Error(`connect ETIMEDOUT ${formatTarget(target)}`), { code: 'ETIMEDOUT', syscall: 'connect' })), timeoutMs);
    const onAbort = (): void => fail(signal.reason as Error);
    function fail(error: Error): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(error);
    }
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (error: NodeJS.ErrnoException) => fail(Object.assign(error, { message: `connect ${error.code ?? 'ERROR'} ${formatTarget(target)}` })));
    socket.once('connect', () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

export async function probeTarget(target: ForwardTarget, signal: AbortSignal, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now();
  const socket = await dialTarget(target, signal, timeoutMs);
  socket.destroy();
  return { ...target, ms: Math.round((performance.now() - started) * 10) / 10 };
}

/**
 * The forwarded connections of one client connection, by id. `net.connect` opens one
 * (and streams what the target sends); the client's bytes come in its own request body,
 * or (older clients) `net.send` feeds it. An id is only found on the connection that
 * opened it.
 */
export class ForwardTable {
  private readonly open = new Map<string, Socket>();
  /** Those fed by net.connect's own body: net.send must not write into them too. */
  private readonly selfFed = new Set<string>();

  get size(): number {
    return this.open.size;
  }

  /** Registers a connected socket; it leaves the table when it closes. `selfFed`: its bytes come in net.connect's body. */
  add(socket: Socket, selfFed = false): ConnectResult {
    const id = randomBytes(16).toString('hex');
    this.open.set(id, socket);
    if (selfFed) this.selfFed.add(id);
    socket.once('close', () => {
      this.open.delete(id);
      this.selfFed.delete(id);
    });
    return { id };
  }

  /** The socket net.send { id } feeds. */
  get(rawId: unknown): Socket {
    const socket = typeof rawId === 'string' ? this.open.get(rawId) : undefined;
    if (!socket) throw agentError(AgentErrorCode.NO_SUCH_STREAM, `net.send: no forwarded connection ${describeValue(rawId)} is open on this connection`);
    if (this.selfFed.has(rawId as string)) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `net.send: forwarded connection ${describeValue(rawId)} takes its bytes from its net.connect request body`);
    }
    return socket;
  }

  destroyAll(): void {
    for (const socket of this.open.values()) socket.destroy();
    this.open.clear();
  }
}

/**
 * What the target sends, chunk by chunk to the client: the socket is paused while a chunk
 * is being delivered, so a client that does not read stalls this TCP connection (the
 * guest service sees a full window), never the agent's memory. Ends when the target ends.
 */
export function pumpTarget(socket: Socket, send: ChunkSink, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let delivering = false;
    let ended = false;
    const finish = (error?: Error): void => {
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(bytes);
    };
    const onAbort = (): void => {
      socket.destroy();
      finish(signal.reason as Error);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('data', (chunk: Buffer) => {
      delivering = true;
      socket.pause();
      send(chunk).then(
        () => {
          bytes += chunk.length;
          delivering = false;
          if (ended) finish();
          else socket.resume();
        },
        (error: unknown) => {
          socket.destroy();
          finish(error as Error);
        },
      );
    });
    socket.once('end', () => {
      ended = true;
      if (!delivering) finish();
    });
    socket.once('error', (error) => finish(error));
    socket.once('close', () => {
      if (!ended && !delivering) finish();
    });
  });
}

/** The client's bytes to the target, with backpressure; the end of the body half-closes the target. */
export async function feedTarget(socket: Socket, body: AsyncIterable<Uint8Array>, signal: AbortSignal, method = 'net.send'): Promise<SendResult> {
  let bytes = 0;
  for await (const chunk of body) {
    if (signal.aborted) throw signal.reason as Error;
    if (socket.destroyed) throw agentError(AgentErrorCode.NO_SUCH_STREAM, `${method}: the forwarded connection closed`);
    bytes += chunk.length;
    if (!socket.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    }
  }
  if (!socket.destroyed) socket.end();
  return { bytes };
}

/**
 * net.connect with a request body: the client's bytes go to the target while the
 * response body streams the target's back (pumpTarget), both in the one request. Never
 * rejects: a body that fails (the client reset its side, the connection went) or a
 * target that closed resets the target, which ends pumpTarget too; an ended body
 * half-closes it. Resolves with the bytes written.
 */
export async function feedFromConnectBody(socket: Socket, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<SendResult & { error?: Error }> {
  try {
    return await feedTarget(socket, body, signal, 'net.connect');
  } catch (error) {
    socket.destroy();
    return { bytes: socket.bytesWritten, error: error as Error };
  }
}
