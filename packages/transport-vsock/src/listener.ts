import { ListenerBase, toConnection, type Transport } from '@vmlink/transport';
import type { VsockServer, VsockSocket } from '@vmlink/vsock';
import { formatVsockUri } from './address.js';

/** A listening AF_VSOCK socket; each accepted socket becomes a Connection. */
export class VsockListener extends ListenerBase {
  private readonly uri: string;

  constructor(
    transport: Transport,
    private readonly server: VsockServer,
    signal?: AbortSignal,
  ) {
    super(transport, signal);
    const bound = server.address();
    if (!bound) throw new Error('VsockListener: the server is not listening');
    this.uri = formatVsockUri(bound.cid, bound.port);
    server.on('connection', (socket: VsockSocket) => {
      const remote = formatVsockUri(socket.remoteCid ?? 0, socket.remotePort ?? 0);
      this.accept(toConnection(socket, { transport, localAddress: this.uri, remoteAddress: remote }));
    });
    server.on('error', (error: Error) => this.reportError(error));
  }

  /** The bound address; with port `any` in listen(), the port the kernel chose. */
  address(): string {
    return this.uri;
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
    // close() stops accepting at once; its 'close' waits for accepted sockets, which a
    // Listener's close() does not.
    this.server.close();
    return Promise.resolve();
  }
}
