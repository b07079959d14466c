import { Duplex, type DuplexOptions } from 'node:stream';

import { abortError, validateFunction, validateInteger, validateObject } from '@vmlink/errors';

import type { VsockAddress } from './address.js';
import { assertPlatform, vsockBinding, type Binding, type FdStream } from './binding.js';
import { beginConnect } from './connect.js';
import { alreadyConnectedError, invalidFdTypeError, socketClosedError } from './errors.js';
import { MAX_TIMER_MS, parseConnectOptions, validateBoolean, validateFd, type ConnectOptions } from './options.js';

export interface VsockSocketOptions {
  /** Keep the writable side open after the peer ends (default false, like `net`). */
  allowHalfOpen?: boolean;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

export interface VsockConnectOptions extends ConnectOptions, VsockSocketOptions {}

function duplexOptions(options: unknown): DuplexOptions {
  assertPlatform();
  validateObject(options, 'options');
  const highWaterMark = (name: string) =>
    options[name] === undefined ? undefined : validateInteger(options[name], `options.${name}`, 0, 2 ** 31 - 1);
  return {
    allowHalfOpen: validateBoolean(options.allowHalfOpen, 'options.allowHalfOpen') ?? false,
    emitClose: false, // 'close' carries hadError, like net.Socket
    autoDestroy: true,
    decodeStrings: true,
    readableHighWaterMark: highWaterMark('readableHighWaterMark'),
    writableHighWaterMark: highWaterMark('writableHighWaterMark'),
  };
}

/** Internal: how VsockServer hands an accepted fd to a new socket. */
export const kAccepted = Symbol('vmlink.vsock.accepted');

const ENOTCONN_CODES = new Set(['ENOTCONN', 'ECONNRESET', 'EPIPE']);

/**
 * An AF_VSOCK stream socket: a `stream.Duplex` shaped like `net.Socket`. Create one with
 * `connect()`, from a server's 'connection' event, or with `VsockSocket.fromFd()`.
 * Events: 'connect', 'ready', 'data', 'end', 'drain', 'timeout', 'error', 'close'(hadError).
 */
export class VsockSocket extends Duplex {
  /** Bytes received so far. */
  bytesRead = 0;
  /** The peer's CID and port; undefined until connected. */
  remoteCid: number | undefined;
  remotePort: number | undefined;
  /** This end's CID and port (getsockname; a loopback client may see VMADDR_CID_ANY). */
  localCid: number | undefined;
  localPort: number | undefined;

  #binding: Binding | undefined;
  #handle: FdStream | undefined;
  #connecting = false;
  #cancelConnect: (() => void) | undefined;
  #bytesWritten = 0;
  #wantRead = false;
  #refed = true;
  #afterConnect: Array<() => void> = [];
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(options: VsockSocketOptions = {}) {
    super(duplexOptions(options));
  }

  /**
   * Adopts a connected AF_VSOCK stream socket (e.g. inherited from a parent). The socket
   * owns the fd from then on. Throws ERR_INVALID_FD_TYPE for anything else (the fd is then
   * left alone), or the getpeername error (ENOTCONN) when it is not connected.
   */
  static fromFd(fd: number, options: VsockSocketOptions = {}): VsockSocket {
    validateFd(fd, 'fd');
    const binding = vsockBinding();
    const info = binding.vsockAdoptFd(fd);
    if (!info.vsock) throw invalidFdTypeError(fd, 'is not an AF_VSOCK socket');
    if (info.listening) throw invalidFdTypeError(fd, 'is a listening socket: use server.listen({ fd })');
    if (info.type !== 'stream') throw invalidFdTypeError(fd, `is a ${info.type} socket, not a stream socket`);
    const peer = binding.vsockPeerName(fd);
    const socket = new VsockSocket(options);
    socket.#attach(binding, fd, peer);
    return socket;
  }

  /** Internal: wraps an accepted connection's fd. */
  static [kAccepted](binding: Binding, fd: number, peer: VsockAddress, options: VsockSocketOptions): VsockSocket {
    const socket = new VsockSocket(options);
    socket.#attach(binding, fd, peer);
    return socket;
  }

  /** Bytes handed to the socket for writing (including those still queued). */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** True between connect() and 'connect'. */
  get connecting(): boolean {
    return this.#connecting;
  }

  /** True until connected (like net.Socket#pending). */
  get pending(): boolean {
    return this.#handle === undefined || this.#connecting;
  }

  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.#connecting) return 'opening';
    if (this.#handle === undefined || this.destroyed) return 'closed';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** The fd while open, else -1. */
  get fd(): number {
    return this.#handle?.fd ?? -1;
  }

  /** This end's address, like net.Socket#address(); {} before connect. */
  address(): VsockAddress | Record<string, never> {
    if (this.localCid === undefined || this.localPort === undefined) return {};
    return { cid: this.localCid, port: this.localPort };
  }

  /**
   * Connects this new socket. Throws for bad options (ERR_INVALID_ARG_TYPE /
   * ERR_OUT_OF_RANGE), on a destroyed socket (ERR_SOCKET_CLOSED) and when already
   * connected or connecting (ERR_VMLINK_SOCKET_CONNECTED). Connect failures arrive as
   * 'error' (`connect ECONNREFUSED vsock://1:1234`, with code/errno/syscall/cid/port).
   */
  connect(options: ConnectOptions, onConnect?: () => void): this {
    if (this.destroyed) throw socketClosedError();
    if (this.#handle !== undefined || this.#connecting) throw alreadyConnectedError();
    const { target, signal } = parseConnectOptions(options);
    const binding = vsockBinding(); // off Linux: throws ERR_VMLINK_UNSUPPORTED_PLATFORM now
    if (onConnect !== undefined) {
      validateFunction(onConnect, 'onConnect');
      this.once('connect', onConnect);
    }
    this.remoteCid = target.cid;
    this.remotePort = target.port;
    this.#connecting = true;
    if (signal?.aborted) {
      this.#failSoon(signal);
      return this;
    }
    let handle: FdStream;
    try {
      handle = this.#openHandle(binding, binding.vsockSocket('stream'));
    } catch (error) {
      this.#connecting = false;
      process.nextTick(() => this.destroy(error as Error));
      return this;
    }
    if (signal !== undefined) this.#watchSignal(signal);
    this.#cancelConnect = beginConnect(binding, handle, target, (error) => this.#onConnectDone(error));
    return this;
  }

  /**
   * Idle timeout like net.Socket#setTimeout: 'timeout' after `ms` without reads or
   * writes (the socket is NOT closed: call destroy() in the listener). 0 disables.
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    validateInteger(ms, 'ms', 0, MAX_TIMER_MS);
    if (onTimeout !== undefined) {
      validateFunction(onTimeout, 'onTimeout');
      if (ms === 0) this.removeListener('timeout', onTimeout);
      else this.once('timeout', onTimeout);
    }
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (ms > 0 && !this.destroyed) {
      this.#idleTimer = setTimeout(() => this.emit('timeout'), ms);
      this.#idleTimer.unref();
    }
    return this;
  }

  /** Keep the event loop alive while this socket is open (default). */
  ref(): this {
    this.#refed = true;
    this.#handle?.ref();
    return this;
  }

  /** Let the process exit even though this socket is open. */
  unref(): this {
    this.#refed = false;
    this.#handle?.unref();
    return this;
  }

  /** Resets the socket: like destroy(), for net.Socket compatibility. */
  resetAndDestroy(): this {
    return this.destroy();
  }

  // ---- stream.Duplex implementation ----------------------------------------------------

  override _read(): void {
    this.#wantRead = true;
    if (!this.#connecting) this.#handle?.readStart();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send([chunk], chunk.length, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((entry) => entry.chunk);
    this.#send(buffers, buffers.reduce((total, buffer) => total + buffer.length, 0), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#connecting) {
      this.#afterConnect.push(() => this._final(callback));
      return;
    }
    try {
      this.#handle?.shutdown();
      callback();
    } catch (error) {
      // The peer is already gone: nothing left to tell it.
      callback(ENOTCONN_CODES.has((error as NodeJS.ErrnoException).code ?? '') ? null : (error as Error));
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#cancelConnect?.();
    this.#cancelConnect = undefined;
    this.#connecting = false;
    this.#afterConnect = [];
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#unwatchSignal?.();
    this.#handle?.close();
    callback(error);
    process.nextTick(() => this.emit('close', error !== null && error !== undefined));
  }

  // ---- internals --------------------------------------------------------------------------

  #unwatchSignal: (() => void) | undefined;

  #watchSignal(signal: AbortSignal): void {
    const onAbort = () => this.destroy(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    this.#unwatchSignal = () => signal.removeEventListener('abort', onAbort);
  }

  #failSoon(signal: AbortSignal): void {
    // An AbortError, as net does, whether the connect has started or not; never
    // synchronously from connect().
    process.nextTick(() => this.destroy(abortError(signal)));
  }

  #openHandle(binding: Binding, fd: number): FdStream {
    this.#binding = binding;
    const handle = new binding.FdStream(fd, undefined, {
      onData: (chunk) => this.#onData(chunk),
      onEnd: () => this.push(null),
      onError: (error) => this.destroy(error),
    });
    this.#handle = handle;
    if (!this.#refed) handle.unref();
    return handle;
  }

  #attach(binding: Binding, fd: number, peer: VsockAddress): void {
    const handle = this.#openHandle(binding, fd);
    this.remoteCid = peer.cid;
    this.remotePort = peer.port;
    this.#readLocalAddress(handle);
  }

  #readLocalAddress(handle: FdStream): void {
    try {
      const local = this.#binding?.vsockSockName(handle.fd);
      this.localCid = local?.cid;
      this.localPort = local?.port;
    } catch {
      // A peer that reset at once: the address is simply unknown.
    }
  }

  #onConnectDone(error: Error | null): void {
    this.#cancelConnect = undefined;
    this.#connecting = false;
    if (error !== null) {
      this.destroy(error);
      return;
    }
    const handle = this.#handle;
    if (handle === undefined || this.destroyed) return;
    this.#readLocalAddress(handle);
    this.emit('connect');
    this.emit('ready');
    if (this.#wantRead) handle.readStart();
    const queued = this.#afterConnect;
    this.#afterConnect = [];
    for (const run of queued) run();
  }

  #onData(chunk: Buffer): void {
    this.bytesRead += chunk.length;
    this.#idleTimer?.refresh();
    if (!this.push(chunk)) this.#handle?.readStop();
  }

  #send(buffers: Buffer[], length: number, callback: (error?: Error | null) => void): void {
    if (this.#connecting) {
      this.#afterConnect.push(() => this.#send(buffers, length, callback));
      return;
    }
    const handle = this.#handle;
    if (handle === undefined) {
      callback(socketClosedError());
      return;
    }
    this.#bytesWritten += length;
    this.#idleTimer?.refresh();
    try {
      if (handle.write(buffers, (error) => callback(error))) callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/** Creates a socket and connects it, like net.connect(). */
export function connect(options: VsockConnectOptions, onConnect?: () => void): VsockSocket {
  validateObject(options, 'options');
  const socket = new VsockSocket({
    allowHalfOpen: options.allowHalfOpen,
    readableHighWaterMark: options.readableHighWaterMark,
    writableHighWaterMark: options.writableHighWaterMark,
  });
  return socket.connect(options, onConnect);
}
