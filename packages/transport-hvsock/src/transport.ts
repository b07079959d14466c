import { createConnection, type Socket } from 'node:net';
import { invalidArgType, outOfRange, validateObject } from '@vmlink/errors';
import {
  dialSocket,
  resolveAddress,
  validateListenOptions,
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
} from '@vmlink/transport';
import { DEFAULT_SOCKET_MODE, bindUnixSocket, listenOnBound, unixPeer, type UnixListener } from '@vmlink/transport-unix';
import { HVSOCK_SCHEMES, UNNAMED_HVSOCK_URI, listenPathOf, parseHvsockAddress, type HvsockAddress } from './address.js';
import { hybridVsockHandshake } from './handshake.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

/** A dialed hybrid-vsock Connection. */
export interface HvsockConnection extends Connection {
  /**
   * The number the VMM sent in its `OK <n>` reply. Firecracker and Cloud Hypervisor:
   * the host-side port they allocated for this connection (>= 2^30 on Firecracker), i.e.
   * the port the guest sees as its peer's; vhost-device-vsock: the guest port echoed.
   */
  readonly hostPort: number;
}

/** Options of `listen()`; defaults from `hvsock(...)`. */
export interface HvsockListenOptions extends ListenOptions {
  /** Permission bits of `<path>_<PORT>` (default 0o600: the VMM must run as our uid). */
  readonly mode?: number;
  /**
   * Remove a stale `<path>_<PORT>` socket (one nobody answers on) before binding
   * (default true: a host program that crashed leaves one, and the VMM keeps the name).
   * Never removes anything that is not a socket, nor a live socket.
   */
  readonly reclaimStale?: boolean;
}

export type HvsockTransportOptions = Pick<HvsockListenOptions, 'mode' | 'reclaimStale'>;

function validateMode(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < 0 || value > 0o777) throw outOfRange(name, 'an integer >= 0 and <= 0o777', value);
  return value;
}

function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/**
 * The host side of hybrid vsock (Firecracker, Cloud Hypervisor, vhost-device-vsock,
 * @vmlink/vhost-user-vsock): the guest's vsock appears on the host as the VMM's Unix
 * socket `path`. `dial('hvsock:PATH:PORT')` reaches the guest's vsock port PORT through
 * the `CONNECT`/`OK` handshake; `listen('hvsock:PATH:PORT')` takes the guest's
 * connections to host port PORT, which the VMM delivers to `PATH_PORT`.
 */
export class HvsockTransport implements Transport<HvsockAddress> {
  readonly name = 'hvsock';
  readonly schemes = HVSOCK_SCHEMES;
  readonly capabilities = CAPABILITIES;
  private readonly defaults: Required<HvsockTransportOptions>;

  constructor(options: HvsockTransportOptions = {}) {
    validateObject(options, 'options');
    this.defaults = {
      mode: options.mode === undefined ? DEFAULT_SOCKET_MODE : validateMode(options.mode, 'options.mode'),
      reclaimStale: options.reclaimStale === undefined ? true : validateBoolean(options.reclaimStale, 'options.reclaimStale'),
    };
  }

  parse(uri: string): HvsockAddress {
    return parseHvsockAddress(uri);
  }

  dial(address: HvsockAddress | string, options?: DialOptions): Promise<HvsockConnection> {
    let target: HvsockAddress;
    try {
      target = resolveAddress(address, parseHvsockAddress);
    } catch (error) {
      return Promise.reject(error);
    }
    let hostPort = 0;
    return dialSocket(this, target.uri, options, {
      // allowHalfOpen: end() sends FIN, which the VMM turns into a vsock SHUTDOWN(send).
      open: () => createConnection({ path: target.path, allowHalfOpen: true }),
      handshake: async (socket: Socket, signal) => {
        hostPort = await hybridVsockHandshake(socket, target.port, target.uri, signal);
      },
      describe: (socket: Socket) => {
        Object.defineProperty(socket, 'hostPort', { value: hostPort, enumerable: true });
        return { localAddress: UNNAMED_HVSOCK_URI, remoteAddress: target.uri, peer: unixPeer(socket) };
      },
    }) as Promise<Socket & HvsockConnection>;
  }

  async listen(address: HvsockAddress | string, options: HvsockListenOptions = {}): Promise<Listener> {
    const target = resolveAddress(address, parseHvsockAddress);
    const path = listenPathOf(target);
    const { signal, backlog } = validateListenOptions(options, 0x7fff_ffff);
    const mode = options.mode === undefined ? this.defaults.mode : validateMode(options.mode, 'options.mode');
    const reclaimStale = options.reclaimStale === undefined ? this.defaults.reclaimStale : validateBoolean(options.reclaimStale, 'options.reclaimStale');
    const bound = await bindUnixSocket({ scheme: 'unix', uri: `unix:${path}`, path, abstract: false }, { mode, reclaimStale, backlog });
    // The VMM connects with no handshake and does not say which guest port dialed.
    const listener: UnixListener = await listenOnBound(
      this,
      bound,
      target.uri,
      (socket) => ({ localAddress: target.uri, remoteAddress: UNNAMED_HVSOCK_URI, peer: unixPeer(socket) }),
      signal,
    );
    return listener;
  }
}

/** `createTransports([hvsock()])`; `options` set the defaults of every `listen()`. */
export function hvsock(options?: HvsockTransportOptions): HvsockTransport {
  return new HvsockTransport(options);
}
