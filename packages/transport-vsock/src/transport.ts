import { once } from 'node:events';
import { throwIfAborted, validateAbortSignal, validateInteger, validateObject } from '@vmlink/errors';
import {
  dialWithDeadline,
  resolveAddress,
  toConnection,
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
} from '@vmlink/transport';
import { connect, createServer, type VsockSocket } from '@vmlink/vsock';
import { VSOCK_SCHEMES, assertDialable, formatVsockUri, parseVsockAddress, type VsockTransportAddress } from './address.js';
import { VsockListener } from './listener.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

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
    return dialWithDeadline(target.uri, options, (signal) =>
      new Promise((resolve, reject) => {
        // The kernel's own connect timeout follows ours, so ETIMEDOUT comes from whichever
        // fires first with the same shape. allowHalfOpen gives end() = shutdown(SHUT_WR).
        const socket: VsockSocket = connect({ cid: target.cid, port: target.port, timeout: options?.timeout, signal, allowHalfOpen: true });
        const onError = (error: Error): void => reject(error);
        socket.once('error', onError);
        socket.once('connect', () => {
          socket.removeListener('error', onError);
          const local = formatVsockUri(socket.localCid ?? 0xffff_ffff, socket.localPort ?? 0xffff_ffff);
          resolve(toConnection(socket, { transport: this, localAddress: local, remoteAddress: target.uri }));
        });
      }),
    );
  }

  async listen(address: VsockTransportAddress | string, options: ListenOptions = {}): Promise<Listener> {
    const target = resolveAddress(address, parseVsockAddress);
    validateObject(options, 'options');
    validateAbortSignal(options.signal, 'options.signal');
    const backlog = options.backlog === undefined ? undefined : validateInteger(options.backlog, 'options.backlog', 1, 65535);
    throwIfAborted(options.signal);

    const server = createServer({ allowHalfOpen: true });
    server.listen({ cid: target.cid, port: target.port, backlog });
    const [event] = (await Promise.race([once(server, 'listening').then(() => ['listening']), once(server, 'error')])) as [unknown];
    if (event instanceof Error) throw event;
    const listener = new VsockListener(this, server, options.signal);
    if (options.signal?.aborted) await listener.close();
    return listener;
  }
}

/** `createTransports([vsock()])`. */
export function vsock(): VsockTransport {
  return new VsockTransport();
}
