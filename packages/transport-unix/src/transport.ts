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
import { UNIX_SCHEMES, UNNAMED_UNIX_URI, netPath, parseUnixAddress, type UnixAddress } from './address.js';
import { DEFAULT_SOCKET_MODE, listenUnixSocket, socketFileOptions, type SocketFileDefaults, type SocketFileOptions } from './listen.js';
import { unixPeer } from './peer.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

/** unix's defaults: owner-only socket files; a name in use is an error unless asked. */
const UNIX_DEFAULTS: SocketFileDefaults = Object.freeze({ mode: DEFAULT_SOCKET_MODE, reclaimStale: false });

/** Options of `listen()`: `mode` (default 0o600) and `reclaimStale` (default false). */
export interface UnixListenOptions extends ListenOptions, SocketFileOptions {}

/** `unix(options)`: the defaults of every `listen()`. */
export type UnixTransportOptions = SocketFileOptions;

/** The Unix domain socket transport: `unix:/path` and `unix:@abstract`. */
export class UnixTransport implements Transport<UnixAddress> {
  readonly name = 'unix';
  readonly schemes = UNIX_SCHEMES;
  readonly capabilities = CAPABILITIES;
  private readonly defaults: SocketFileDefaults;

  constructor(options: UnixTransportOptions = {}) {
    this.defaults = socketFileOptions(options, UNIX_DEFAULTS);
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

  async listen(address: UnixAddress | string, options?: UnixListenOptions): Promise<Listener> {
    const target = resolveAddress(address, parseUnixAddress);
    return listenUnixSocket(this, target, target.uri, options, this.defaults, (socket) => ({
      localAddress: target.uri,
      remoteAddress: UNNAMED_UNIX_URI,
      peer: unixPeer(socket),
    }));
  }
}

/** `createTransports([unix()])`; `options` set the defaults of every `listen()`. */
export function unix(options?: UnixTransportOptions): UnixTransport {
  return new UnixTransport(options);
}
