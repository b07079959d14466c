import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

/**
 * What a transport can do, declared by the plugin (never guessed by callers). The
 * compliance suite skips, visibly, exactly the checks a capability says are absent.
 */
export interface TransportCapabilities {
  /** Many Connections at once to one address (false: one at a time, like virtio-serial). */
  readonly multiConnection: boolean;
  /** `end()` closes only our sending side; the peer can keep sending until it ends too. */
  readonly halfClose: boolean;
  /** Each write arrives as exactly one read on the other side (SEQPACKET-like). */
  readonly messageBoundaries: boolean;
  /** `listen()` is available on this side. */
  readonly listen: boolean;
}

/** A parsed address. Plugins extend it with their own fields (`path`, `cid`, `port`...). */
export interface TransportAddress {
  /** The URI scheme, lower case, without the colon: `unix`, `vsock`... */
  readonly scheme: string;
  /** The canonical URI form of this address; `parse(address.uri)` gives it back. */
  readonly uri: string;
}

export interface DialOptions {
  /** Aborting rejects the dial with an `AbortError` (code `ABORT_ERR`). */
  readonly signal?: AbortSignal;
  /** Milliseconds until the dial fails with `ETIMEDOUT`; the timer stops once connected. */
  readonly timeout?: number;
}

export interface ListenOptions {
  /** Aborting closes the listener (like `net.Server.listen({ signal })`). */
  readonly signal?: AbortSignal;
  /** Pending connection queue length, where the channel has one. */
  readonly backlog?: number;
  /**
   * Listeners that are a file in the filesystem (unix:, hvsock:): permission bits of the
   * socket file, in place before anyone can connect (their default: 0o600). Other
   * transports ignore it.
   */
  readonly mode?: number;
  /**
   * Listeners that are a file in the filesystem (unix:, hvsock:): on EADDRINUSE remove
   * the file in the way if, and only if, it is a socket nobody answers on, then bind
   * again. Never removes a regular file, a symlink, a directory or a live socket. Other
   * transports ignore it.
   */
  readonly reclaimStale?: boolean;
}

/**
 * Who is on the other end, as the kernel reports it: never taken from the peer's own
 * bytes, so access control can rely on it. Each field is present only where the channel
 * knows it (Unix sockets: SO_PEERCRED; vsock: the peer's CID; virtio-serial: nothing,
 * the host is the only possible peer).
 */
export interface ConnectionPeer {
  /** Unix sockets: the uid/gid/pid of the process that connected (SO_PEERCRED). */
  readonly uid?: number;
  readonly gid?: number;
  readonly pid?: number;
  /** vsock: the peer's context id (2 is the host). */
  readonly cid?: number;
}

/**
 * One established byte stream. It is a plain `stream.Duplex` (backpressure through
 * `write()` returning false and `'drain'`), plus where it runs and who is on each end.
 */
export interface Connection extends Duplex {
  /** The transport that made this connection. */
  readonly transport: Transport;
  /** URI of our end (for an unnamed socket, just the scheme and an empty address). */
  readonly localAddress: string;
  /** URI of the other end. */
  readonly remoteAddress: string;
  /** The peer's kernel-reported identity, where the channel has one (see ConnectionPeer). */
  readonly peer?: ConnectionPeer;
  /** Let this connection keep the event loop alive (the default). */
  ref(): this;
  /** Let the process exit even though this connection is open. */
  unref(): this;
}

export interface ListenerEventMap {
  connection: [connection: Connection];
  error: [error: Error];
  close: [];
}

/**
 * Accepts Connections. Use `'connection'` events or `for await (const c of listener)`;
 * `await using listener = await t.listen(...)` closes it at scope end.
 */
export interface Listener extends EventEmitter<ListenerEventMap>, AsyncIterable<Connection>, AsyncDisposable {
  readonly transport: Transport;
  /** True once `close()` was called. */
  readonly closed: boolean;
  /** The URI this listener is bound to (dialable when the channel allows it). */
  address(): string;
  /** Stop accepting. Open Connections stay open. Safe to call more than once. */
  close(): Promise<void>;
  ref(): this;
  unref(): this;
}

/** A channel plugin: parses its own URIs, dials, and (if `capabilities.listen`) listens. */
export interface Transport<A extends TransportAddress = TransportAddress> {
  /** Short plugin name, e.g. `unix`, `vsock`, `virtio-serial`. */
  readonly name: string;
  /** URI schemes this transport owns, lower case, without the colon. */
  readonly schemes: readonly string[];
  readonly capabilities: TransportCapabilities;
  /** Parse and validate a URI; throws `ERR_VMLINK_INVALID_ADDRESS` naming the input. */
  parse(uri: string): A;
  dial(address: A | string, options?: DialOptions): Promise<Connection>;
  listen(address: A | string, options?: ListenOptions): Promise<Listener>;
}
