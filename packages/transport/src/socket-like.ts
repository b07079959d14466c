import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { throwIfAborted, validateAbortSignal, validateInteger, validateObject } from '@vmlink/errors';
import { toConnection } from './connection.js';
import { dialWithDeadline } from './deadline.js';
import { ListenerBase } from './listener.js';
import type { Connection, ConnectionPeer, DialOptions, ListenOptions, Transport } from './types.js';

/**
 * The shared dial/listen/close logic of the plugins whose channel is a socket with
 * `net.Socket`'s events ('connect', 'error') and a server with `net.Server`'s
 * ('listening', 'connection', 'error'): unix, vsock, hvsock. Each plugin keeps only what
 * is special about it (address format, how to open the socket, a handshake, a bind
 * procedure) in a file of its own.
 */

function ignoreLateError(): void {}

/** What a socket-like plugin says about one of its sockets, once connected. */
export interface SocketEnds {
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly peer?: ConnectionPeer;
}

/** A connecting socket: `net.Socket`, `VsockSocket`... */
export type ConnectingSocket = Duplex & { once(event: 'connect', listener: () => void): unknown };

export interface SocketDialSpec<S extends ConnectingSocket> {
  /** Start connecting. `signal` fires on the caller's abort or the deadline. */
  open(signal: AbortSignal): S;
  /**
   * Optional work on the connected socket before it is handed out (hvsock's
   * `CONNECT`/`OK` exchange). It runs under the same deadline and signal; the socket is
   * destroyed if it fails. While it runs it must listen for 'error' itself and settle on
   * any error or close of the socket.
   */
  handshake?(socket: S, signal: AbortSignal): Promise<void>;
  /** Name both ends (and the peer) of the connected socket. */
  describe(socket: S): SocketEnds;
}

/**
 * Dial through a socket-like channel: `open` the socket, wait for 'connect', run the
 * optional handshake, then turn it into a Connection. Errors are the channel's own (with
 * their errno `code`); abort and timeout come from `dialWithDeadline`; a socket is never
 * left open on any failure path.
 */
export function dialSocket<S extends ConnectingSocket>(
  transport: Transport,
  address: string,
  options: DialOptions | undefined,
  spec: SocketDialSpec<S>,
): Promise<S & Connection> {
  return dialWithDeadline(address, options, (signal) =>
    new Promise<S & Connection>((resolve, reject) => {
      const socket = spec.open(signal);
      let done = false;
      const fail = (error: Error): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        // A socket given the signal may still report its own abort after destroy(): a
        // failed dial's socket must never raise an unhandled 'error'.
        socket.removeListener('error', fail);
        socket.on('error', ignoreLateError);
        socket.destroy();
        reject(error);
      };
      const onAbort = (): void => fail(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('error', fail);
      const succeed = (): void => {
        if (done) return;
        let ends: SocketEnds;
        try {
          ends = spec.describe(socket);
        } catch (error) {
          fail(error as Error);
          return;
        }
        done = true;
        signal.removeEventListener('abort', onAbort);
        socket.removeListener('error', fail);
        resolve(toConnection(socket, { transport, ...ends }));
      };
      socket.once('connect', () => {
        if (!spec.handshake) {
          succeed();
          return;
        }
        // The handshake owns 'error' until it settles (it can tell a reset before its
        // reply from other failures). An error after it settled and before we hand the
        // socket out (e.g. a reset right behind the reply) fails the dial instead of
        // going unheard; a Connection handed out has no listener of ours.
        let lateError: Error | undefined;
        const remember = (error: Error): void => void (lateError ??= error);
        socket.removeListener('error', fail);
        socket.on('error', remember);
        spec.handshake(socket, signal).then(
          () => {
            socket.removeListener('error', remember);
            if (lateError) fail(lateError);
            else succeed();
          },
          (error: unknown) => {
            socket.removeListener('error', remember);
            fail(error instanceof Error ? error : new Error(String(error)));
          },
        );
      });
    }),
  );
}

/** `ListenOptions` checked the same way by every socket-like plugin. */
export function validateListenOptions(options: unknown, maxBacklog: number): ListenOptions {
  if (options === undefined) return {};
  validateObject(options, 'options');
  validateAbortSignal(options.signal, 'options.signal');
  const backlog = options.backlog === undefined ? undefined : validateInteger(options.backlog, 'options.backlog', 1, maxBacklog);
  throwIfAborted(options.signal);
  return { signal: options.signal, backlog };
}

/** A listening server: `net.Server`, `VsockServer`... */
export interface SocketServer extends EventEmitter {
  close(): unknown;
  ref(): unknown;
  unref(): unknown;
}

/**
 * Wait until `server` listens (after `start()` asked it to), or reject with its error.
 * Both outcomes remove both one-shot listeners, so a server that fails leaves nothing
 * attached.
 */
export function whenListening(server: SocketServer, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.removeListener('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.removeListener('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    start();
  });
}

export interface SocketListenerSpec<S extends Duplex> {
  /** The URI this listener reports from `address()`. */
  readonly uri: string;
  /** Name both ends of an accepted socket. */
  describe(socket: S): SocketEnds;
  /**
   * Called once, right after the server stopped accepting (e.g. unlink the socket file
   * this plugin bound itself). An error it throws rejects `close()`.
   */
  afterClose?(): void | Promise<void>;
}

/**
 * The Listener of every socket-like plugin: each accepted socket becomes a Connection,
 * server errors are reported, `close()` stops accepting at once without waiting for the
 * accepted Connections (unlike `net.Server.close()`'s callback).
 */
export class SocketListener<S extends Duplex> extends ListenerBase {
  constructor(
    transport: Transport,
    private readonly server: SocketServer,
    private readonly spec: SocketListenerSpec<S>,
    signal?: AbortSignal,
  ) {
    super(transport, signal);
    server.on('connection', (socket: S) => {
      let ends: SocketEnds;
      try {
        ends = spec.describe(socket);
      } catch (error) {
        socket.destroy();
        this.reportError(error as Error);
        return;
      }
      this.accept(toConnection(socket, { transport, ...ends }));
    });
    server.on('error', (error: Error) => this.reportError(error));
  }

  address(): string {
    return this.spec.uri;
  }

  ref(): this {
    this.server.ref();
    return this;
  }

  unref(): this {
    this.server.unref();
    return this;
  }

  protected async closeHandle(): Promise<void> {
    // close() stops accepting at once; its callback would wait for every accepted socket.
    this.server.close();
    await this.spec.afterClose?.();
    // Resolve on a later turn so 'close' never fires inside the caller's close() call.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * `listen()` of a socket-like plugin after its own bind: wrap the listening server, and
 * honour a signal that aborted while binding.
 */
export async function socketListener<S extends Duplex>(
  transport: Transport,
  server: SocketServer,
  spec: SocketListenerSpec<S>,
  signal: AbortSignal | undefined,
): Promise<SocketListener<S>> {
  const listener = new SocketListener<S>(transport, server, spec, signal);
  if (signal?.aborted) await listener.close();
  return listener;
}
