import { type Server, type Socket } from 'node:net';
import { ListenerBase, toConnection, type Transport } from '@vmlink/transport';
import { UNNAMED_UNIX_URI, type UnixAddress } from './address.js';

/** A listening Unix socket; each accepted socket becomes a Connection. */
export class UnixListener extends ListenerBase {
  constructor(
    transport: Transport,
    private readonly server: Server,
    private readonly bound: UnixAddress,
    signal?: AbortSignal,
  ) {
    super(transport, signal);
    server.on('connection', (socket: Socket) => {
      this.accept(toConnection(socket, { transport, localAddress: bound.uri, remoteAddress: UNNAMED_UNIX_URI }));
    });
    server.on('error', (error: Error) => this.reportError(error));
  }

  address(): string {
    return this.bound.uri;
  }

  ref(): this {
    this.server.ref();
    return this;
  }

  unref(): this {
    this.server.unref();
    return this;
  }

  protected closeHandle(): Promise<void> {
    // server.close() closes (and unlinks) the socket at once, but calls back only after
    // every accepted socket is gone; a Listener's close() must not wait for those.
    this.server.close();
    return new Promise((resolve) => setImmediate(resolve));
  }
}
