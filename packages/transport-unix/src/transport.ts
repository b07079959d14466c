import { createConnection, type Socket } from 'node:net';
import { invalidArgType, outOfRange, validateObject } from '@vmlink/errors';
import {
  dialSocket,
  resolveAddress,
  socketListener,
  validateListenOptions,
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type SocketListener,
  type Transport,
  type TransportCapabilities,
} from '@vmlink/transport';
import { UNIX_SCHEMES, UNNAMED_UNIX_URI, netPath, parseUnixAddress, type UnixAddress } from './address.js';
import { bindUnixSocket, type BoundSocket } from './bind.js';
import { unixPeer } from './peer.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

/** Default permission bits of a listening socket file: the owner only. */
export const DEFAULT_SOCKET_MODE = 0o600;

/** Options of `listen()` that only file-backed sockets have (defaults from `unix(...)`). */
export interface UnixListenOptions extends ListenOptions {
  /** Permission bits of the socket file, set before anyone can connect (default 0o600). */
  readonly mode?: number;
  /**
   * On EADDRINUSE, remove the file in the way if it is a socket nobody answers on, then
   * bind again (default false). Never removes anything else. See the README.
   */
  readonly reclaimStale?: boolean;
}

export type UnixTransportOptions = Pick<UnixListenOptions, 'mode' | 'reclaimStale'>;

/** A listening Unix socket; each accepted socket becomes a Connection with `peer` set. */
export type UnixListener = SocketListener<Socket>;

function validateMode(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < 0 || value > 0o777) throw outOfRange(name, 'an integer >= 0 and <= 0o777', value);
  return value;
}

function validateReclaim(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** The Unix domain socket transport: `unix:/path` and `unix:@abstract`. */
export class UnixTransport implements Transport<UnixAddress> {
  readonly name = 'unix';
  readonly schemes = UNIX_SCHEMES;
  readonly capabilities = CAPABILITIES;
  private readonly defaults: Required<UnixTransportOptions>;

  constructor(options: UnixTransportOptions = {}) {
    validateObject(options, 'options');
    this.defaults = {
      mode: options.mode === undefined ? DEFAULT_SOCKET_MODE : validateMode(options.mode, 'options.mode'),
      reclaimStale: options.reclaimStale === undefined ? false : validateReclaim(options.reclaimStale, 'options.reclaimStale'),
    };
  }

  parse(uri: string): UnixAddress {
    return parseUnixAddress(uri);
  }

  dial(address: UnixAddress | string, options?: DialOptions): Promise<Connection> {
    let target: UnixAddress;
    try {
      target = resolveAddress(address, parseUnixAddress);
    } catch (error) {
      return Promise.reject(error);
    }
    return dialSocket(this, target.uri, options, {
      // allowHalfOpen: end() sends FIN and leaves our reading side open (halfClose).
      open: () => createConnection({ path: netPath(target), allowHalfOpen: true }),
      describe: (socket: Socket) => ({ localAddress: UNNAMED_UNIX_URI, remoteAddress: target.uri, peer: unixPeer(socket) }),
    });
  }

  async listen(address: UnixAddress | string, options: UnixListenOptions = {}): Promise<Listener> {
    const target = resolveAddress(address, parseUnixAddress);
    const { signal, backlog } = validateListenOptions(options, 0x7fff_ffff);
    const mode = options.mode === undefined ? this.defaults.mode : validateMode(options.mode, 'options.mode');
    const reclaimStale = options.reclaimStale === undefined ? this.defaults.reclaimStale : validateReclaim(options.reclaimStale, 'options.reclaimStale');
    const bound = await bindUnixSocket(target, { mode, reclaimStale, backlog });
    return listenOnBound(this, bound, target.uri, (socket) => ({ localAddress: target.uri, remoteAddress: UNNAMED_UNIX_URI, peer: unixPeer(socket) }), signal);
  }
}

/** Wrap a bound Unix socket as a Listener (shared with plugins built on Unix sockets, like hvsock). */
export function listenOnBound(
  transport: Transport,
  bound: BoundSocket,
  uri: string,
  describe: (socket: Socket) => { localAddress: string; remoteAddress: string; peer?: ReturnType<typeof unixPeer> },
  signal: AbortSignal | undefined,
): Promise<UnixListener> {
  return socketListener<Socket>(transport, bound.server, { uri, describe, afterClose: () => bound.release() }, signal);
}

/** `createTransports([unix()])`; `options` set the defaults of every `listen()`. */
export function unix(options?: UnixTransportOptions): UnixTransport {
  return new UnixTransport(options);
}
