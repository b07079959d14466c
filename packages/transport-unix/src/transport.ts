import { createConnection, createServer } from 'node:net';
import { throwIfAborted, validateAbortSignal, validateObject, validateInteger } from '@vmlink/errors';
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
import { UNIX_SCHEMES, UNNAMED_UNIX_URI, netPath, parseUnixAddress, type UnixAddress } from './address.js';
import { UnixListener } from './listener.js';

const CAPABILITIES: TransportCapabilities = Object.freeze({
  multiConnection: true,
  halfClose: true,
  messageBoundaries: false,
  listen: true,
});

/** The Unix domain socket transport: `unix:/path` and `unix:@abstract`. */
export class UnixTransport implements Transport<UnixAddress> {
  readonly name = 'unix';
  readonly schemes = UNIX_SCHEMES;
  readonly capabilities = CAPABILITIES;

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
    return dialWithDeadline(target.uri, options, (signal) =>
      new Promise((resolve, reject) => {
        // allowHalfOpen: end() sends FIN and leaves our reading side open (halfClose).
        const socket = createConnection({ path: netPath(target), allowHalfOpen: true });
        const onAbort = (): void => {
          socket.destroy();
          reject(signal.reason as Error);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const onError = (error: Error): void => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        };
        socket.once('error', onError);
        socket.once('connect', () => {
          signal.removeEventListener('abort', onAbort);
          socket.removeListener('error', onError);
          resolve(toConnection(socket, { transport: this, localAddress: UNNAMED_UNIX_URI, remoteAddress: target.uri }));
        });
      }),
    );
  }

  async listen(address: UnixAddress | string, options: ListenOptions = {}): Promise<Listener> {
    const target = resolveAddress(address, parseUnixAddress);
    validateObject(options, 'options');
    validateAbortSignal(options.signal, 'options.signal');
    if (options.backlog !== undefined) validateInteger(options.backlog, 'options.backlog', 1, 0x7fff_ffff);
    throwIfAborted(options.signal);

    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: netPath(target), backlog: options.backlog }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    const listener = new UnixListener(this, server, target, options.signal);
    if (options.signal?.aborted) await listener.close();
    return listener;
  }
}

/** `createTransports([unix()])`. */
export function unix(): UnixTransport {
  return new UnixTransport();
}
