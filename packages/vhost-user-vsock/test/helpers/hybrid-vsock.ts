// The host side of hybrid vsock, written out here (the device package does not depend on
// @vmlink/transport-hvsock): CONNECT <port>\n, one reply line, then raw bytes.
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

export interface HostConnection {
  socket: Socket;
  /** The reply line with its newline ('OK 5000\n'), or '' when the device closed the socket instead. */
  reply: string;
  /** Bytes that came in the same reads as the reply line, after its newline. */
  rest: Buffer;
}

/** Host -> guest: connect to `udsPath`, CONNECT `port` (plus `firstData` right behind the line), read the reply line. */
export function hostConnect(udsPath: string, port: number, firstData?: Buffer): Promise<HostConnection> {
  return new Promise((resolve) => {
    const socket = connect({ path: udsPath, allowHalfOpen: true });
    let buffered = Buffer.alloc(0);
    const line = Buffer.from(`CONNECT ${port}\n`);
    socket.once('connect', () => socket.write(firstData === undefined ? line : Buffer.concat([line, firstData])));
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(10);
      if (nl < 0) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ socket, reply: buffered.subarray(0, nl + 1).toString(), rest: buffered.subarray(nl + 1) });
    };
    socket.on('data', onData);
    // Refused: the device closes the socket (ECONNRESET when our CONNECT bytes were unread).
    // The socket is half-open capable, so a plain close shows as 'end' without 'close'.
    const refused = (): void => resolve({ socket, reply: '', rest: buffered });
    socket.once('error', refused);
    socket.once('end', refused);
    socket.once('close', refused);
  });
}

/** CONNECT until the guest's listener answers OK (a listener started in the background needs a moment). */
export async function hostConnectWhenListening(udsPath: string, port: number, firstData?: Buffer): Promise<HostConnection> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const result = await hostConnect(udsPath, port, firstData);
    if (result.reply !== '') return result;
    result.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the guest never accepted on vsock port ${port}`);
}

/** Everything the socket still sends until its end, after `first`. */
export function readAll(socket: Socket, first: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks = [first];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.resume();
  });
}

/** A host listener on `${udsPath}_${port}`: where the guest's connects to CID 2 port `port` arrive. */
export async function hostListen(udsPath: string, port: number, onConnection: (socket: Socket) => void, options: { allowHalfOpen?: boolean } = {}): Promise<Server> {
  const server = createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(`${udsPath}_${port}`, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
