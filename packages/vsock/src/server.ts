import { closeSync } from 'node:fs';
import { EventEmitter } from 'node:events';

import { validateAbortSignal, validateFunction, validateInteger, validateObject, VmlinkError } from '@vmlink/errors';

import { validateBindAddress, type VsockAddress } from './address.js';
import { kAccepted } from './adopt.js';
import { assertPlatform, vsockBinding, type Binding, type NativeListener, type SocketType } from './binding.js';
import { invalidFdTypeError } from './errors.js';
import { validateBoolean, validateFd } from './options.js';
import { VsockSeqpacketSocket, type SeqpacketSocketOptions } from './seqpacket.js';
import { VsockSocket, type VsockSocketOptions } from './socket.js';

export interface ListenOptions {
  /** Local CID to bind (default VMADDR_CID_ANY). */
  cid?: number;
  /** Port (default VMADDR_PORT_ANY: the kernel picks one; see address()). */
  port?: number;
  /** listen() backlog (default SOMAXCONN). */
  backlog?: number;
  /** Aborting closes the server. */
  signal?: AbortSignal;
  /**
   * Adopt an existing AF_VSOCK socket (systemd socket activation): bound, and listening
   * or not yet. The server owns it from then on. cid/port are then ignored.
   */
  fd?: number;
}

export interface VsockServerOptions extends VsockSocketOptions {
  /** Accepted sockets start paused (no reads until resume()), like net. */
  pauseOnConnect?: boolean;
}

type Connection<T extends SocketType> = T extends 'stream' ? VsockSocket : VsockSeqpacketSocket;

// Accept errors that mean "out of fds or memory for now": retry shortly instead of spinning.
const ACCEPT_RETRY_MS = 100;

/**
 * An AF_VSOCK listening socket, shaped like net.Server. Events: 'listening',
 * 'connection'(socket), 'error', 'close' (after close() once every connection closed).
 */
export class VsockServer<T extends SocketType = 'stream'> extends EventEmitter {
  readonly #type: T;
  readonly #socketOptions: VsockSocketOptions & SeqpacketSocketOptions;
  readonly #pauseOnConnect: boolean;
  #listener: NativeListener | undefined;
  #address: VsockAddress | undefined;
  #connections = new Set<Connection<T>>();
  #refed = true;
  #retryTimer: NodeJS.Timeout | undefined;
  #unwatchSignal: (() => void) | undefined;

  /** @internal use createServer() / createSeqpacketServer(). */
  constructor(type: T, options: VsockServerOptions & SeqpacketSocketOptions = {}) {
    super();
    assertPlatform();
    validateObject(options, 'options');
    this.#type = type;
    this.#pauseOnConnect = validateBoolean(options.pauseOnConnect, 'options.pauseOnConnect') ?? false;
    const { pauseOnConnect: _ignored, ...socketOptions } = options;
    this.#socketOptions = socketOptions;
  }

  /** True between 'listening' and close(). */
  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /** Open connections accepted by this server. */
  get connections(): number {
    return this.#connections.size;
  }

  /**
   * Binds and listens: `listen({ cid, port, backlog, signal, fd }, cb)` or `listen(port, cb)`.
   * Throws ERR_SERVER_ALREADY_LISTEN when listening. bind/listen failures (EADDRINUSE...)
   * arrive as 'error', like net.
   */
  listen(options: ListenOptions | number = {}, onListening?: () => void): this {
    if (this.#listener !== undefined) {
      throw new VmlinkError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    }
    const opts: ListenOptions = typeof options === 'number' ? { port: options } : options;
    validateObject(opts, 'options');
    const backlog = opts.backlog === undefined ? undefined : validateInteger(opts.backlog, 'options.backlog', 0, 65535);
    validateAbortSignal(opts.signal, 'options.signal');
    const fd = opts.fd === undefined ? undefined : validateFd(opts.fd, 'options.fd');
    const address = validateBindAddress(opts as Record<string, unknown>, 'options');
    if (onListening !== undefined) {
      validateFunction(onListening, 'onListening');
      this.once('listening', onListening);
    }
    if (opts.signal?.aborted) {
      process.nextTick(() => this.close());
      return this;
    }

    const binding = vsockBinding();
    let listener: NativeListener;
    try {
      const listeningFd = fd === undefined ? this.#bindNew(binding, address, backlog) : this.#adopt(binding, fd, backlog);
      this.#address = binding.vsockSockName(listeningFd);
      listener = new binding.VsockListener(listeningFd, {
        onConnection: (connFd, cid, port) => this.#onConnection(binding, connFd, { cid, port }),
        onError: (error) => this.#onAcceptError(error),
      });
    } catch (error) {
      if (error instanceof VmlinkError && error.code === 'ERR_INVALID_FD_TYPE') throw error;
      process.nextTick(() => this.emit('error', error));
      return this;
    }
    this.#listener = listener;
    listener.start();
    if (!this.#refed) listener.unref();
    if (opts.signal !== undefined) {
      const signal = opts.signal;
      const onAbort = () => this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unwatchSignal = () => signal.removeEventListener('abort', onAbort);
    }
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  /** The bound address ({ cid, port }), or null when not listening. */
  address(): VsockAddress | null {
    return this.#listener === undefined || this.#address === undefined ? null : { ...this.#address };
  }

  /**
   * Stops accepting. Open connections stay open; 'close' is emitted once they all closed.
   * `cb` gets ERR_SERVER_NOT_RUNNING when the server was not listening (as net does).
   */
  close(onClose?: (error?: Error) => void): this {
    if (onClose !== undefined) {
      validateFunction(onClose, 'onClose');
      if (this.#listener === undefined) {
        this.once('close', () => onClose(new VmlinkError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      } else {
        this.once('close', () => onClose());
      }
    }
    this.#listener?.close();
    this.#listener = undefined;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#unwatchSignal?.();
    this.#unwatchSignal = undefined;
    this.#emitCloseIfDrained();
    return this;
  }

  /** Counts open connections, like net.Server#getConnections. */
  getConnections(callback: (error: Error | null, count: number) => void): this {
    validateFunction(callback, 'callback');
    const count = this.#connections.size;
    process.nextTick(() => callback(null, count));
    return this;
  }

  ref(): this {
    this.#refed = true;
    this.#listener?.ref();
    this.#retryTimer?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    this.#listener?.unref();
    this.#retryTimer?.unref();
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#listener === undefined) return;
    await new Promise<void>((resolve) => this.close(() => resolve()));
  }

  // ---- internals --------------------------------------------------------------------------

  #bindNew(binding: Binding, address: VsockAddress, backlog: number | undefined): number {
    const fd = binding.vsockSocket(this.#type);
    try {
      binding.vsockBind(fd, address.cid, address.port);
      binding.vsockListen(fd, backlog ?? binding.vsockConstants.SOMAXCONN);
      return fd;
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Validates a caller's fd; leaves it untouched (and theirs) unless it fits. */
  #adopt(binding: Binding, fd: number, backlog: number | undefined): number {
    const info = binding.vsockAdoptFd(fd);
    if (!info.vsock) throw invalidFdTypeError(fd, 'is not an AF_VSOCK socket');
    if (info.type !== this.#type) throw invalidFdTypeError(fd, `is a ${info.type} socket, this server takes ${this.#type} sockets`);
    if (!info.listening) binding.vsockListen(fd, backlog ?? binding.vsockConstants.SOMAXCONN);
    return fd;
  }

  #onConnection(binding: Binding, fd: number, peer: VsockAddress): void {
    const socket = (
      this.#type === 'stream'
        ? VsockSocket[kAccepted]({ binding, fd, peer }, this.#socketOptions)
        : VsockSeqpacketSocket[kAccepted]({ binding, fd, peer }, this.#socketOptions)
    ) as Connection<T>;
    if (this.#pauseOnConnect) socket.pause();
    this.#connections.add(socket);
    socket.once('close', () => {
      this.#connections.delete(socket);
      this.#emitCloseIfDrained();
    });
    this.emit('connection', socket);
  }

  #onAcceptError(error: Error): void {
    // The native listener stopped (EMFILE...): report, then try again shortly.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#listener?.start();
    }, ACCEPT_RETRY_MS);
    if (!this.#refed) this.#retryTimer.unref();
    this.emit('error', error);
  }

  #emitCloseIfDrained(): void {
    if (this.#listener !== undefined || this.#connections.size > 0) return;
    process.nextTick(() => {
      if (this.#listener === undefined && this.#connections.size === 0) this.emit('close');
    });
  }
}

/** Creates a stream server, like net.createServer(). */
export function createServer(onConnection?: (socket: VsockSocket) => void): VsockServer<'stream'>;
export function createServer(options: VsockServerOptions, onConnection?: (socket: VsockSocket) => void): VsockServer<'stream'>;
export function createServer(
  optionsOrListener?: VsockServerOptions | ((socket: VsockSocket) => void),
  onConnection?: (socket: VsockSocket) => void,
): VsockServer<'stream'> {
  const [options, listener] = typeof optionsOrListener === 'function' ? [{}, optionsOrListener] : [optionsOrListener ?? {}, onConnection];
  const server = new VsockServer('stream', options);
  if (listener !== undefined) {
    validateFunction(listener, 'onConnection');
    server.on('connection', listener);
  }
  return server;
}

/** Creates a SEQPACKET server: its connections are VsockSeqpacketSocket. */
export function createSeqpacketServer(onConnection?: (socket: VsockSeqpacketSocket) => void): VsockServer<'seqpacket'>;
export function createSeqpacketServer(
  options: VsockServerOptions & SeqpacketSocketOptions,
  onConnection?: (socket: VsockSeqpacketSocket) => void,
): VsockServer<'seqpacket'>;
export function createSeqpacketServer(
  optionsOrListener?: (VsockServerOptions & SeqpacketSocketOptions) | ((socket: VsockSeqpacketSocket) => void),
  onConnection?: (socket: VsockSeqpacketSocket) => void,
): VsockServer<'seqpacket'> {
  const [options, listener] = typeof optionsOrListener === 'function' ? [{}, optionsOrListener] : [optionsOrListener ?? {}, onConnection];
  const server = new VsockServer('seqpacket', options);
  if (listener !== undefined) {
    validateFunction(listener, 'onConnection');
    server.on('connection', listener);
  }
  return server;
}
