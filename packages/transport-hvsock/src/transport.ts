import { createConnection, type Socket } from 'node:net';
import {
  dialSocket,
  resolveAddress,
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
} from '@vmlink/transport';
import {
  DEFAULT_SOCKET_MODE,
  listenUnixSocket,
  socketFileOptions,
  unixPeer,
  type SocketFileDefaults,
  type SocketFileOptions,
} from '@vmlink/transport-unix';
import { HVSOCK_SCHEMES, UNNAMED_HVSOCK_URI, listenPathOf, parseHvsockAddress, type HvsockAddress } from './address.js';
import { hybridVsockHandshake } from './handshake.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

/**
 * hvsock's defaults: owner-only `PATH_PORT` files, and a stale one reclaimed (a host
 * program that crashed leaves one; the VMM keeps connecting to that name).
 */
const HVSOCK_DEFAULTS: SocketFileDefaults = Object.freeze({ mode: DEFAULT_SOCKET_MODE, reclaimStale: true });

/** A dialed hybrid-vsock Connection. */
export interface HvsockConnection extends Connection {
  /**
   * The number the VMM sent in its `OK <n>` reply. Firecracker and Cloud Hypervisor:
   * the host-side port they allocated for this connection (>= 2^30 on Firecracker), i.e.
   * the port the guest sees as its peer's; vhost-device-vsock: the guest port echoed.
   */
  readonly hostPort: number;
}

/**
 * Options of `listen()`: `mode` of `PATH_PORT` (default 0o600: the VMM must run as our
 * uid) and `reclaimStale` (default true; never removes anything but a socket nobody
 * answers on).
 */
export interface HvsockListenOptions extends ListenOptions, SocketFileOptions {}

/** `hvsock(options)`: the defaults of every `listen()`. */
export type HvsockTransportOptions = SocketFileOptions;

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
  private readonly defaults: SocketFileDefaults;

  constructor(options: HvsockTransportOptions = {}) {
    this.defaults = socketFileOptions(options, HVSOCK_DEFAULTS);
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

  async listen(address: HvsockAddress | string, options?: HvsockListenOptions): Promise<Listener> {
    const target = resolveAddress(address, parseHvsockAddress);
    const path = listenPathOf(target);
    // The VMM connects with no handshake and does not say which guest port dialed.
    return listenUnixSocket(this, { scheme: 'unix', uri: `unix:${path}`, path, abstract: false }, target.uri, options, this.defaults, (socket) => ({
      localAddress: target.uri,
      remoteAddress: UNNAMED_HVSOCK_URI,
      peer: unixPeer(socket),
    }));
  }
}

/** `createTransports([hvsock()])`; `options` set the defaults of every `listen()`. */
export function hvsock(options?: HvsockTransportOptions): HvsockTransport {
  return new HvsockTransport(options);
}
