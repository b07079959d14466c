import {
  dialSocket,
  resolveAddress,
  socketListener,
  validateListenOptions,
  whenListening,
  type Connection,
  type ConnectionPeer,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type SocketListener,
  type Transport,
  type TransportCapabilities,
} from '@vmlink/transport';
import { connect, createServer, type VsockSocket } from '@vmlink/vsock';
import { CID_ANY, PORT_ANY, VSOCK_SCHEMES, assertDialable, formatVsockUri, parseVsockAddress, type VsockTransportAddress } from './address.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

/** A listening AF_VSOCK socket; each accepted socket becomes a Connection with `peer.cid`. */
export type VsockListener = SocketListener<VsockSocket>;

/** The peer's CID as the kernel reports it (the source address of the connection). */
function vsockPeer(cid: number | undefined): ConnectionPeer | undefined {
  return cid === undefined ? undefined : { cid };
}

/** AF_VSOCK stream sockets (via @vmlink/vsock) as a @vmlink/transport plugin. */
export class VsockTransport implements Transport<VsockTransportAddress> {
  readonly name = 'vsock';
  readonly schemes = VSOCK_SCHEMES;
  readonly capabilities = CAPABILITIES;

  parse(uri: string): VsockTransportAddress {
    return parseVsockAddress(uri);
  }

  dial(address: VsockTransportAddress | string, options?: DialOptions): Promise<Connection> {
    let target: VsockTransportAddress;
    try {
      target = resolveAddress(address, parseVsockAddress);
      assertDialable(target);
    } catch (error) {
      return Promise.reject(error);
    }
    return dialSocket(this, target.uri, options, {
      // The kernel's own connect timeout follows ours, so ETIMEDOUT comes from whichever
      // fires first with the same shape. allowHalfOpen gives end() = shutdown(SHUT_WR).
      open: (signal) => connect({ cid: target.cid, port: target.port, timeout: options?.timeout, signal, allowHalfOpen: true }),
      describe: (socket: VsockSocket) => ({
        localAddress: formatVsockUri(socket.localCid ?? CID_ANY, socket.localPort ?? PORT_ANY),
        remoteAddress: target.uri,
        peer: vsockPeer(socket.remoteCid ?? target.cid),
      }),
    });
  }

  async listen(address: VsockTransportAddress | string, options?: ListenOptions): Promise<Listener> {
    const target = resolveAddress(address, parseVsockAddress);
    const { signal, backlog } = validateListenOptions(options, 65535);
    const server = createServer({ allowHalfOpen: true });
    await whenListening(server, () => server.listen({ cid: target.cid, port: target.port, backlog }));
    const bound = server.address();
    if (!bound) throw new Error('vsock listen: the server is not listening');
    const uri = formatVsockUri(bound.cid, bound.port);
    return socketListener<VsockSocket>(
      this,
      server,
      {
        uri, // with port `any` in listen(), the port the kernel chose
        describe: (socket) => ({
          localAddress: uri,
          remoteAddress: formatVsockUri(socket.remoteCid ?? 0, socket.remotePort ?? 0),
          peer: vsockPeer(socket.remoteCid),
        }),
      },
      signal,
    );
  }
}

/** `createTransports([vsock()])`. */
export function vsock(): VsockTransport {
  return new VsockTransport();
}
