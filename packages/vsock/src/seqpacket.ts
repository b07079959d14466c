import { EventEmitter } from 'node:events';

import { abortError, outOfRange, validateBuffer, validateFunction, validateInteger, validateObject, VmlinkError } from '@vmlink/errors';

import type { VsockAddress } from './address.js';
import { assertPlatform, vsockBinding, type Binding, type FdStream } from './binding.js';
import { beginConnect } from './connect.js';
import { alreadyConnectedError, invalidFdTypeError, messageTruncatedError, socketClosedError } from './errors.js';
import { parseConnectOptions, validateFd, type ConnectOptions } from './options.js';
import { kAccepted } from './socket.js';

export interface SeqpacketSocketOptions {
  /**
   * The largest message received whole; a longer one raises an 'error'
   * (ERR_VMLINK_MESSAGE_TRUNCATED) and only its start is kept. Default: the socket's
   * receive buffer size (SO_VM_SOCKETS_BUFFER_SIZE, 256 KiB by default).
   */
  maxMessageSize?: number;
  /** Queued bytes above which send() returns false (then wait for 'drain'). Default 256 KiB. */
  highWaterMark?: number;
}

export interface SeqpacketConnectOptions extends ConnectOptions, SeqpacketSocketOptions {}

type SendCallback = (error: Error | null) => void;
interface Outgoing {
  message: Uint8Array;
  callback: SendCallback | undefined;
}

const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
// Errors that concern one message only: the connection stays usable.
const MESSAGE_ERRORS = new Set(['EMSGSIZE', 'ENOBUFS', 'ENOMEM']);

/**
 * An AF_VSOCK SOCK_SEQPACKET connection: whole messages, boundaries kept.
 * Events: 'connect', 'message'(Buffer), 'drain', 'end' (peer closed), 'error', 'close'(hadError).
 */
export class VsockSeqpacketSocket extends EventEmitter {
  remoteCid: number | undefined;
  remotePort: number | undefined;
  localCid: number | undefined;
  localPort: number | undefined;
  bytesRead = 0;
  bytesWritten = 0;

  readonly #maxMessageSize: number | undefined;
  readonly #highWaterMark: number;
  #binding: Binding | undefined;
  #handle: FdStream | undefined;
  #connecting = false;
  #destroyed = false;
  #ending = false;
  #paused = false;
  #refed = true;
  #queue: Outgoing[] = [];
  #queuedBytes = 0;
  #inFlight: Outgoing | undefined;
  #needDrain = false;
  #cancelConnect: (() => void) | undefined;
  #unwatchSignal: (() => void) | undefined;

  constructor(options: SeqpacketSocketOptions = {}) {
    super();
    assertPlatform();
    validateObject(options, 'options');
    if (options.maxMessageSize !== undefined) {
      this.#maxMessageSize = validateInteger(options.maxMessageSize, 'options.maxMessageSize', 1, MAX_MESSAGE_SIZE);
    }
    this.#highWaterMark =
      options.highWaterMark === undefined ? 256 * 1024 : validateInteger(options.highWaterMark, 'options.highWaterMark', 0, 2 ** 31 - 1);
  }

  /** Adopts a connected AF_VSOCK SOCK_SEQPACKET socket; it owns the fd from then on. */
  static fromFd(fd: number, options: SeqpacketSocketOptions = {}): VsockSeqpacketSocket {
    validateFd(fd, 'fd');
    const binding = vsockBinding();
    const info = binding.vsockAdoptFd(fd);
    if (!info.vsock) throw invalidFdTypeError(fd, 'is not an AF_VSOCK socket');
    if (info.listening) throw invalidFdTypeError(fd, 'is a listening socket: use server.listen({ fd })');
    if (info.type !== 'seqpacket') throw invalidFdTypeError(fd, `is a ${info.type} socket, not a seqpacket socket`);
    const peer = binding.vsockPeerName(fd);
    const socket = new VsockSeqpacketSocket(options);
    socket.#attach(binding, fd, peer);
    return socket;
  }

  /** Internal: wraps an accepted connection's fd. */
  static [kAccepted](binding: Binding, fd: number, peer: VsockAddress, options: SeqpacketSocketOptions): VsockSeqpacketSocket {
    const socket = new VsockSeqpacketSocket(options);
    socket.#attach(binding, fd, peer);
    return socket;
  }

  get connecting(): boolean {
    return this.#connecting;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Bytes queued by send() and not yet taken by the kernel. */
  get bufferedAmount(): number {
    return this.#queuedBytes;
  }

  /** The largest message received whole (see the option). */
  get maxMessageSize(): number | undefined {
    return this.#maxMessageSize ?? (this.#handle ? this.#binding?.vsockGetBufferSize(this.#handle.fd) : undefined);
  }

  address(): VsockAddress | Record<string, never> {
    if (this.localCid === undefined || this.localPort === undefined) return {};
    return { cid: this.localCid, port: this.localPort };
  }

  /** Connects this new socket; same options, errors and rules as VsockSocket#connect. */
  connect(options: ConnectOptions, onConnect?: () => void): this {
    if (this.#destroyed) throw socketClosedError();
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
      process.nextTick(() => this.destroy(abortError(signal)));
      return this;
    }
    let handle: FdStream;
    try {
      handle = this.#openHandle(binding, binding.vsockSocket('seqpacket'));
    } catch (error) {
      this.#connecting = false;
      process.nextTick(() => this.destroy(error as Error));
      return this;
    }
    if (signal !== undefined) {
      const onAbort = () => this.destroy(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unwatchSignal = () => signal.removeEventListener('abort', onAbort);
    }
    this.#cancelConnect = beginConnect(binding, handle, target, (error) => this.#onConnectDone(error));
    return this;
  }

  /**
   * Sends one message (1 byte or more). Returns false when the queue is above
   * highWaterMark: wait for 'drain'. `callback(error)` runs once the kernel took it or
   * failed it; without a callback a failure is an 'error' event. Throws on a closed or
   * ended socket.
   */
  send(message: Uint8Array, callback?: SendCallback): boolean {
    validateBuffer(message, 'message');
    if (message.byteLength === 0) throw outOfRange('message.byteLength', '>= 1 (an empty message reads as EOF)', 0);
    if (callback !== undefined) validateFunction(callback, 'callback');
    if (this.#destroyed) throw socketClosedError();
    if (this.#ending) throw new VmlinkError('ERR_STREAM_WRITE_AFTER_END', 'send after end');
    this.#queue.push({ message, callback });
    this.#queuedBytes += message.byteLength;
    this.bytesWritten += message.byteLength;
    if (!this.#connecting) this.#flush();
    const below = this.#queuedBytes < this.#highWaterMark;
    if (!below) this.#needDrain = true;
    return below;
  }

  /** Stop 'message' events: the kernel buffers and then pushes back on the sender. */
  pause(): this {
    this.#paused = true;
    this.#handle?.readStop();
    return this;
  }

  resume(): this {
    this.#paused = false;
    if (!this.#connecting && this.listenerCount('message') > 0) this.#handle?.readStart();
    return this;
  }

  /** Sends what is queued, then shutdown(SHUT_WR): the peer sees 'end'. */
  end(onFinish?: () => void): this {
    if (onFinish !== undefined) this.once('finish', onFinish);
    if (this.#ending) return this;
    this.#ending = true;
    if (!this.#connecting) this.#flush();
    return this;
  }

  /** Closes the socket now (queued messages are dropped). Idempotent. */
  destroy(error?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#connecting = false;
    this.#cancelConnect?.();
    this.#unwatchSignal?.();
    this.#handle?.close();
    const dropped = this.#inFlight === undefined ? this.#queue : [this.#inFlight, ...this.#queue];
    this.#queue = [];
    this.#inFlight = undefined;
    this.#queuedBytes = 0;
    process.nextTick(() => {
      for (const { callback } of dropped) callback?.(error ?? socketClosedError());
      if (error !== undefined) this.emit('error', error);
      this.emit('close', error !== undefined);
    });
    return this;
  }

  close(onClose?: () => void): this {
    if (onClose !== undefined) this.once('close', onClose);
    return this.destroy();
  }

  ref(): this {
    this.#refed = true;
    this.#handle?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    this.#handle?.unref();
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#destroyed) return;
    await new Promise<void>((resolve) => this.close(resolve));
  }

  // ---- internals --------------------------------------------------------------------------

  #openHandle(binding: Binding, fd: number): FdStream {
    this.#binding = binding;
    let readSize = this.#maxMessageSize;
    if (readSize === undefined) {
      try {
        readSize = binding.vsockGetBufferSize(fd);
      } catch {
        readSize = 256 * 1024;
      }
    }
    const handle = new binding.FdStream(fd, { messages: true, readSize }, {
      onData: (message, truncatedFrom) => this.#onMessage(message, truncatedFrom),
      onEnd: () => this.#onEnd(),
      onError: (error) => this.destroy(error),
    });
    this.#handle = handle;
    if (!this.#refed) handle.unref();
    // Deliver messages as soon as someone listens (like a Readable in flowing mode).
    this.on('newListener', (event: string) => {
      if (event === 'message' && !this.#paused && !this.#connecting) process.nextTick(() => this.#startReading());
    });
    return handle;
  }

  #startReading(): void {
    if (!this.#paused && !this.#destroyed && this.listenerCount('message') > 0) this.#handle?.readStart();
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
    if (handle === undefined || this.#destroyed) return;
    this.#readLocalAddress(handle);
    this.emit('connect');
    this.#startReading();
    this.#flush();
  }

  #onMessage(message: Buffer, truncatedFrom: number | undefined): void {
    this.bytesRead += message.length;
    if (truncatedFrom !== undefined) {
      this.emit('error', messageTruncatedError(truncatedFrom, message.length));
      return;
    }
    this.emit('message', message);
  }

  #onEnd(): void {
    this.emit('end');
    this.destroy();
  }

  #flush(): void {
    const handle = this.#handle;
    while (handle !== undefined && !this.#destroyed && this.#inFlight === undefined) {
      const next = this.#queue.shift();
      if (next === undefined) break;
      let done = false;
      try {
        done = handle.write(next.message, (error) => this.#sent(next, error));
      } catch (error) {
        this.#sent(next, error as Error, true);
        continue;
      }
      if (done) this.#sent(next, null, true);
      else this.#inFlight = next;
    }
    if (this.#destroyed || this.#inFlight !== undefined || this.#queue.length > 0) return;
    if (this.#needDrain) {
      this.#needDrain = false;
      process.nextTick(() => this.emit('drain'));
    }
    if (this.#ending && handle !== undefined) {
      try {
        handle.shutdown();
      } catch {
        // The peer is gone already: nothing left to tell it.
      }
      process.nextTick(() => this.emit('finish'));
    }
  }

  #sent(outgoing: Outgoing, error: Error | null, synchronous = false): void {
    if (this.#inFlight === outgoing) this.#inFlight = undefined;
    this.#queuedBytes -= outgoing.message.byteLength;
    const { callback } = outgoing;
    const code = (error as NodeJS.ErrnoException | null)?.code ?? '';
    const report = () => {
      if (callback !== undefined) callback(error);
      else if (error !== null && MESSAGE_ERRORS.has(code)) this.emit('error', error);
    };
    if (synchronous) process.nextTick(report);
    else report();
    if (error !== null && !MESSAGE_ERRORS.has(code)) {
      this.destroy(error);
      return;
    }
    if (!synchronous) this.#flush();
  }
}

/** Creates a SEQPACKET socket and connects it. */
export function connectSeqpacket(options: SeqpacketConnectOptions, onConnect?: () => void): VsockSeqpacketSocket {
  validateObject(options, 'options');
  const socket = new VsockSeqpacketSocket({ maxMessageSize: options.maxMessageSize, highWaterMark: options.highWaterMark });
  return socket.connect(options, onConnect);
}
