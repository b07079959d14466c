import { EventEmitter } from 'node:events';

import { outOfRange, validateBuffer, validateFunction, validateInteger, validateObject, VmlinkError } from '@vmlink/errors';

import { localAddressOf, type VsockAddress } from './address.js';
import { adoptConnectedFd, kAccepted, type ConnectedFd } from './adopt.js';
import { assertPlatform, type Binding, type FdStream } from './binding.js';
import { SocketEndpoint } from './endpoint.js';
import { messageTruncatedError, socketClosedError } from './errors.js';
import type { ConnectOptions } from './options.js';

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

/** Runs once the message was handed to the kernel, or with the error that stopped it. */
export type SendCallback = (error: Error | null) => void;
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
  readonly #endpoint = new SocketEndpoint(this, {
    createStream: (binding, fd) => this.#createStream(binding, fd),
    onConnected: () => {
      this.emit('connect');
      this.#startReading();
      this.#flush();
    },
  });
  #destroyed = false;
  #ending = false;
  #paused = false;
  #queue: Outgoing[] = [];
  #queuedBytes = 0;
  #inFlight: Outgoing | undefined;
  #needDrain = false;

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
    return VsockSeqpacketSocket[kAccepted](adoptConnectedFd(fd, 'seqpacket'), options);
  }

  /** @internal Wraps an accepted connection's fd. */
  static [kAccepted](connected: ConnectedFd, options: SeqpacketSocketOptions): VsockSeqpacketSocket {
    const socket = new VsockSeqpacketSocket(options);
    socket.#endpoint.attach(connected);
    return socket;
  }

  get connecting(): boolean {
    return this.#endpoint.connecting;
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
    const { binding, handle } = this.#endpoint;
    return this.#maxMessageSize ?? (handle ? binding?.vsockGetBufferSize(handle.fd) : undefined);
  }

  address(): VsockAddress | Record<string, never> {
    return localAddressOf(this);
  }

  /** Connects this new socket; same options, errors and rules as VsockSocket#connect. */
  connect(options: ConnectOptions, onConnect?: () => void): this {
    this.#endpoint.connect('seqpacket', options, onConnect);
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
    if (!this.#endpoint.connecting) this.#flush();
    const below = this.#queuedBytes < this.#highWaterMark;
    if (!below) this.#needDrain = true;
    return below;
  }

  /** Stop 'message' events: the kernel buffers and then pushes back on the sender. */
  pause(): this {
    this.#paused = true;
    this.#endpoint.handle?.readStop();
    return this;
  }

  resume(): this {
    this.#paused = false;
    if (!this.#endpoint.connecting && this.listenerCount('message') > 0) this.#endpoint.handle?.readStart();
    return this;
  }

  /** Sends what is queued, then shutdown(SHUT_WR): the peer sees 'end'. */
  end(onFinish?: () => void): this {
    if (onFinish !== undefined) this.once('finish', onFinish);
    if (this.#ending) return this;
    this.#ending = true;
    if (!this.#endpoint.connecting) this.#flush();
    return this;
  }

  /** Closes the socket now (queued messages are dropped). Idempotent. */
  destroy(error?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#endpoint.close();
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
    this.#endpoint.ref();
    return this;
  }

  unref(): this {
    this.#endpoint.unref();
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#destroyed) return;
    await new Promise<void>((resolve) => this.close(resolve));
  }

  // ---- internals --------------------------------------------------------------------------

  #createStream(binding: Binding, fd: number): FdStream {
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
    // Deliver messages as soon as someone listens (like a Readable in flowing mode).
    this.on('newListener', (event: string) => {
      if (event === 'message' && !this.#paused && !this.#endpoint.connecting) process.nextTick(() => this.#startReading());
    });
    return handle;
  }

  #startReading(): void {
    if (!this.#paused && !this.#destroyed && this.listenerCount('message') > 0) this.#endpoint.handle?.readStart();
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
    const handle = this.#endpoint.handle;
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
