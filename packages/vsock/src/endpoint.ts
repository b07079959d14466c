import { abortError, validateFunction } from '@vmlink/errors';

import type { ConnectedFd } from './adopt.js';
import { vsockBinding, type Binding, type FdStream, type SocketType } from './binding.js';
import { beginConnect } from './connect.js';
import { alreadyConnectedError, socketClosedError } from './errors.js';
import { parseConnectOptions, type ConnectOptions } from './options.js';

/** What an endpoint reads and writes on the socket that owns it: public fields and events. */
export interface EndpointOwner {
  remoteCid: number | undefined;
  remotePort: number | undefined;
  localCid: number | undefined;
  localPort: number | undefined;
  readonly destroyed: boolean;
  destroy(error?: Error): unknown;
  once(event: 'connect', listener: () => void): unknown;
}

/** Where the two socket kinds differ below their API. */
export interface EndpointHooks {
  /** Wraps an fd in the FdStream the socket reads and writes through (its read mode, its callbacks). */
  createStream(binding: Binding, fd: number): FdStream;
  /** The connect succeeded and the local address is read: emit 'connect' and start the I/O. */
  onConnected(handle: FdStream): void;
}

/**
 * The native side that VsockSocket and VsockSeqpacketSocket share: it owns the FdStream
 * (and so the fd), runs connect() with its timeout and AbortSignal, fills in the owner's
 * address fields, and closes it all. The stream or message API stays in each socket class.
 */
export class SocketEndpoint {
  readonly #owner: EndpointOwner;
  readonly #hooks: EndpointHooks;
  #binding: Binding | undefined;
  #handle: FdStream | undefined;
  #connecting = false;
  #refed = true;
  #cancelConnect: (() => void) | undefined;
  #unwatchSignal: (() => void) | undefined;

  constructor(owner: EndpointOwner, hooks: EndpointHooks) {
    this.#owner = owner;
    this.#hooks = hooks;
  }

  get binding(): Binding | undefined {
    return this.#binding;
  }

  /** Set once there is an fd (connecting, accepted or adopted); close() closes it but keeps it. */
  get handle(): FdStream | undefined {
    return this.#handle;
  }

  /** True between connect() and its outcome. */
  get connecting(): boolean {
    return this.#connecting;
  }

  /** Takes over a connected fd: accepted by a server, or adopted by fromFd(). */
  attach({ binding, fd, peer }: ConnectedFd): void {
    const handle = this.#open(binding, fd);
    this.#owner.remoteCid = peer.cid;
    this.#owner.remotePort = peer.port;
    this.#readLocalAddress(handle);
  }

  /**
   * The owner's connect() on a new `type` socket. Throws on a destroyed owner
   * (ERR_SOCKET_CLOSED), when already connected or connecting (ERR_VMLINK_SOCKET_CONNECTED)
   * and for bad options; everything later reaches the owner as destroy(error), never
   * synchronously.
   */
  connect(type: SocketType, options: ConnectOptions, onConnect: (() => void) | undefined): void {
    const owner = this.#owner;
    if (owner.destroyed) throw socketClosedError();
    if (this.#handle !== undefined || this.#connecting) throw alreadyConnectedError();
    const { target, signal } = parseConnectOptions(options);
    const binding = vsockBinding(); // off Linux: throws ERR_VMLINK_UNSUPPORTED_PLATFORM now
    if (onConnect !== undefined) {
      validateFunction(onConnect, 'onConnect');
      owner.once('connect', onConnect);
    }
    owner.remoteCid = target.cid;
    owner.remotePort = target.port;
    this.#connecting = true;
    if (signal?.aborted) {
      // An AbortError, as net does, whether the connect has started or not.
      process.nextTick(() => owner.destroy(abortError(signal)));
      return;
    }
    let handle: FdStream;
    try {
      handle = this.#open(binding, binding.vsockSocket(type));
    } catch (error) {
      this.#connecting = false;
      process.nextTick(() => owner.destroy(error as Error));
      return;
    }
    if (signal !== undefined) this.#watchSignal(signal);
    this.#cancelConnect = beginConnect(binding, handle, target, (error) => this.#onConnectDone(error));
  }

  ref(): void {
    this.#refed = true;
    this.#handle?.ref();
  }

  unref(): void {
    this.#refed = false;
    this.#handle?.unref();
  }

  /** Stops a pending connect and closes the fd: the owner's destroy() calls it. */
  close(): void {
    this.#cancelConnect?.();
    this.#cancelConnect = undefined;
    this.#connecting = false;
    this.#unwatchSignal?.();
    this.#unwatchSignal = undefined;
    this.#handle?.close();
  }

  #open(binding: Binding, fd: number): FdStream {
    this.#binding = binding;
    const handle = this.#hooks.createStream(binding, fd);
    this.#handle = handle;
    if (!this.#refed) handle.unref();
    return handle;
  }

  #watchSignal(signal: AbortSignal): void {
    const onAbort = () => this.#owner.destroy(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    this.#unwatchSignal = () => signal.removeEventListener('abort', onAbort);
  }

  #readLocalAddress(handle: FdStream): void {
    try {
      const local = this.#binding?.vsockSockName(handle.fd);
      this.#owner.localCid = local?.cid;
      this.#owner.localPort = local?.port;
    } catch {
      // A peer that reset at once: the address is simply unknown.
    }
  }

  #onConnectDone(error: Error | null): void {
    this.#cancelConnect = undefined;
    this.#connecting = false;
    if (error !== null) {
      this.#owner.destroy(error);
      return;
    }
    const handle = this.#handle;
    if (handle === undefined || this.#owner.destroyed) return;
    this.#readLocalAddress(handle);
    this.#hooks.onConnected(handle);
  }
}
