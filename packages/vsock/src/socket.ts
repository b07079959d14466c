import { Duplex, type DuplexOptions } from 'node:stream';

import { invalidArgType, outOfRange, validateFunction, validateInteger, validateObject } from '@vmlink/errors';

import { socketAddressOf, type VsockSocketAddress } from './address.js';
import { adoptConnectedFd, kAccepted, type ConnectedFd } from './adopt.js';
import { assertPlatform, type Binding, type FdStream } from './binding.js';
import { SocketEndpoint } from './endpoint.js';
import { socketClosedError } from './errors.js';
import { MAX_TIMER_MS, validateBoolean, type ConnectOptions } from './options.js';
import { streamReadSize } from './read-size.js';

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

/** A timer duration like net's: a number >= 0 (fractions are cut, as timers do), at most 2^31-1. */
function validateTimerMs(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!(value >= 0 && value <= MAX_TIMER_MS)) throw outOfRange(name, `>= 0 and <= ${MAX_TIMER_MS}`, value);
  return Math.trunc(value);
}

const ENOTCONN_CODES = new Set(['ENOTCONN', 'ECONNRESET', 'EPIPE']);

/** SO_VM_SOCKETS_BUFFER_SIZE of `fd`; undefined when the kernel will not say. */
function receiveBufferSize(binding: Binding, fd: number): number | undefined {
  try {
    return binding.vsockGetBufferSize(fd);
  } catch {
    return undefined;
  }
}

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
  /** The idle timeout last given to setTimeout() (undefined before): node:http's Agent reads it, as on net.Socket. */
  timeout: number | undefined;

  readonly #endpoint = new SocketEndpoint(this, {
    createStream: (binding, fd) =>
      new binding.FdStream(fd, { readSize: streamReadSize(receiveBufferSize(binding, fd)) }, {
        onData: (chunk) => this.#onData(chunk),
        onEnd: () => this.push(null),
        onError: (error) => this.destroy(error),
      }),
    onConnected: (handle) => this.#onConnected(handle),
  });
  #bytesWritten = 0;
  #wantRead = false;
  // The native side is reading. The Duplex calls _read() after nearly every push, so this
  // spares a native call per chunk.
  #reading = false;
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
    return VsockSocket[kAccepted](adoptConnectedFd(fd, 'stream'), options);
  }

  /** @internal Wraps an accepted connection's fd. */
  static [kAccepted](connected: ConnectedFd, options: VsockSocketOptions): VsockSocket {
    const socket = new VsockSocket(options);
    socket.#endpoint.attach(connected);
    return socket;
  }

  /** Bytes handed to the socket for writing (including those still queued). */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** True between connect() and 'connect'. */
  get connecting(): boolean {
    return this.#endpoint.connecting;
  }

  /** True until connected (like net.Socket#pending). */
  get pending(): boolean {
    return this.#endpoint.handle === undefined || this.#endpoint.connecting;
  }

  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.#endpoint.connecting) return 'opening';
    if (this.#endpoint.handle === undefined || this.destroyed) return 'closed';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** The fd while open, else -1. */
  get fd(): number {
    return this.#endpoint.handle?.fd ?? -1;
  }

  /**
   * The peer's CID as a decimal string (`'3'`), for code written for net.Socket that logs or
   * keys on `remoteAddress` (node:http, ws, loggers). `remoteCid` is the number.
   */
  get remoteAddress(): string | undefined {
    return this.remoteCid === undefined ? undefined : String(this.remoteCid);
  }

  /** `'vsock'` once there is a peer address, like net's `'IPv4'`/`'IPv6'`. */
  get remoteFamily(): 'vsock' | undefined {
    return this.remoteCid === undefined ? undefined : 'vsock';
  }

  /** This end's CID as a decimal string (see `localCid`). */
  get localAddress(): string | undefined {
    return this.localCid === undefined ? undefined : String(this.localCid);
  }

  get localFamily(): 'vsock' | undefined {
    return this.localCid === undefined ? undefined : 'vsock';
  }

  /**
   * This end's address, like net.Socket#address(): `{ cid, port, address, family: 'vsock' }`
   * (`address` is the CID as a string); {} before connect.
   */
  address(): VsockSocketAddress | Record<string, never> {
    return socketAddressOf(this.localCid, this.localPort);
  }

  /**
   * Accepted for net.Socket compatibility and does nothing: vsock has no keep-alive probes
   * (SO_KEEPALIVE is a TCP mechanism; a vsock peer that goes away is seen as a reset or an
   * end by the transport). node:http's keep-alive Agent calls it on every pooled socket.
   */
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    if (initialDelay !== undefined) validateTimerMs(initialDelay, 'initialDelay');
    void enable; // net coerces any value to a boolean: so do we, and ignore it
    return this;
  }

  /**
   * Accepted for net.Socket compatibility and does nothing: vsock transports send what is
   * written without Nagle-style coalescing delays. node:http2 and ws call it.
   */
  setNoDelay(noDelay?: boolean): this {
    void noDelay;
    return this;
  }

  /** Ends the writable side, then destroys the socket once the write queue is flushed (net.Socket#destroySoon). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /**
   * Connects this new socket. Throws for bad options (ERR_INVALID_ARG_TYPE /
   * ERR_OUT_OF_RANGE), on a destroyed socket (ERR_SOCKET_CLOSED) and when already
   * connected or connecting (ERR_VMLINK_SOCKET_CONNECTED). Connect failures arrive as
   * 'error' (`connect ECONNREFUSED vsock://1:1234`, with code/errno/syscall/cid/port).
   */
  connect(options: ConnectOptions, onConnect?: () => void): this {
    this.#endpoint.connect('stream', options, onConnect);
    return this;
  }

  /**
   * Idle timeout like net.Socket#setTimeout: 'timeout' after `ms` without reads or
   * writes (the socket is NOT closed: call destroy() in the listener). 0 disables.
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    ms = validateTimerMs(ms, 'ms');
    if (onTimeout !== undefined) {
      validateFunction(onTimeout, 'onTimeout');
      if (ms === 0) this.removeListener('timeout', onTimeout);
      else this.once('timeout', onTimeout);
    }
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.timeout = ms;
    if (ms > 0 && !this.destroyed) {
      this.#idleTimer = setTimeout(() => this.emit('timeout'), ms);
      this.#idleTimer.unref();
    }
    return this;
  }

  /** Keep the event loop alive while this socket is open (default). */
  ref(): this {
    this.#endpoint.ref();
    return this;
  }

  /** Let the process exit even though this socket is open. */
  unref(): this {
    this.#endpoint.unref();
    return this;
  }

  /** Resets the socket: like destroy(), for net.Socket compatibility. */
  resetAndDestroy(): this {
    return this.destroy();
  }

  // ---- stream.Duplex implementation ----------------------------------------------------

  override _read(): void {
    this.#wantRead = true;
    if (!this.#reading && !this.#endpoint.connecting) this.#startReading(this.#endpoint.handle);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk, chunk.length, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((entry) => entry.chunk);
    this.#send(buffers, buffers.reduce((total, buffer) => total + buffer.length, 0), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#endpoint.connecting) {
      this.#afterConnect.push(() => this._final(callback));
      return;
    }
    try {
      this.#endpoint.handle?.shutdown();
      callback();
    } catch (error) {
      // The peer is already gone: nothing left to tell it.
      callback(ENOTCONN_CODES.has((error as NodeJS.ErrnoException).code ?? '') ? null : (error as Error));
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#endpoint.close();
    this.#afterConnect = [];
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    callback(error);
    process.nextTick(() => this.emit('close', error !== null && error !== undefined));
  }

  // ---- internals --------------------------------------------------------------------------

  #onConnected(handle: FdStream): void {
    this.emit('connect');
    this.emit('ready');
    if (this.#wantRead) this.#startReading(handle);
    const queued = this.#afterConnect;
    this.#afterConnect = [];
    for (const run of queued) run();
  }

  #onData(chunk: Buffer): void {
    this.bytesRead += chunk.length;
    this.#idleTimer?.refresh();
    if (!this.push(chunk)) {
      this.#reading = false;
      this.#endpoint.handle?.readStop();
    }
  }

  #startReading(handle: FdStream | undefined): void {
    if (handle === undefined) return;
    this.#reading = true;
    handle.readStart();
  }

  // A single Buffer goes to the native write as is: no array or closure per write (hot path).
  #send(buffers: Buffer | Buffer[], length: number, callback: (error?: Error | null) => void): void {
    if (this.#endpoint.connecting) {
      this.#afterConnect.push(() => this.#send(buffers, length, callback));
      return;
    }
    const handle = this.#endpoint.handle;
    if (handle === undefined) {
      callback(socketClosedError());
      return;
    }
    this.#bytesWritten += length;
    this.#idleTimer?.refresh();
    try {
      if (handle.write(buffers, callback)) callback();
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

/** net.createConnection()'s name for connect(): same options, same socket. */
export const createConnection = connect;
