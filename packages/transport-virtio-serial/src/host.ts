import { createConnection, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { toConnection, type Connection, type Transport } from '@vmlink/transport';
import { UNNAMED_HOST_URI, type HostSocketAddress } from './address.js';
import { connectionReset, protocolError } from './errors.js';
import { FrameReader } from './frame-reader.js';
import { FILLER_SIZE, FrameType, encodeData, encodeHeader, newNonce, type Header } from './wire.js';

/** HELLO is sent again after these delays (then every last one) until the guest answers. */
const HELLO_REPEAT_MS = [100, 200, 400, 800, 1600, 3200];

/**
 * The host end of one Connection: QEMU's chardev socket carrying the records of one
 * nonce. Created at connect time; usable once `handshake()` resolved.
 */
class HostConnection extends Duplex {
  private readonly reader: FrameReader;
  private acked = false;
  private sentEnd = false;
  private onAcked: (() => void) | undefined;
  private helloTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly nonce: bigint,
    private readonly address: string,
  ) {
    super({ allowHalfOpen: true });
    this.reader = new FrameReader(
      {
        header: (header) => this.onHeader(header),
        payload: (bytes) => {
          if (!this.push(bytes)) socket.pause();
        },
        desync: () => this.destroy(protocolError(address, 'bytes from the guest are not a record header')),
      },
      { scanning: true }, // anything before our ACK is stale: a former host's or a former Connection's
    );
    socket.on('data', (chunk: Buffer) => this.reader.feed(chunk));
    socket.on('end', () => this.destroy(connectionReset('read', address, 'QEMU closed the chardev socket')));
    socket.on('error', (error: Error) => this.destroy(error));
    socket.on('close', () => this.destroy());
  }

  /** HELLO (repeated until answered: an earlier HELLO may have landed in a dying Connection), wait for ACK, send OPEN. */
  handshake(): Promise<void> {
    return new Promise((resolve, reject) => {
      // Until the dial resolves nobody else listens: the failure goes to the dial's promise.
      const onError = (): void => {};
      const onClose = (): void => {
        this.stopHello();
        this.off('error', onError);
        reject(this.errored ?? connectionReset('read', this.address, 'the chardev socket closed during the handshake'));
      };
      this.on('error', onError);
      this.once('close', onClose);
      this.onAcked = () => {
        this.stopHello();
        this.off('error', onError);
        this.off('close', onClose);
        this.socket.write(encodeHeader(FrameType.open, this.nonce));
        resolve();
      };
      this.socket.write(Buffer.alloc(FILLER_SIZE));
      let attempt = 0;
      const hello = (): void => {
        this.socket.write(encodeHeader(FrameType.hello, this.nonce));
        const delay = HELLO_REPEAT_MS[Math.min(attempt++, HELLO_REPEAT_MS.length - 1)];
        this.helloTimer = setTimeout(hello, delay);
      };
      hello();
    });
  }

  private stopHello(): void {
    if (this.helloTimer !== undefined) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
  }

  private onHeader(header: Header): boolean {
    if (header.nonce !== this.nonce) return false;
    if (!this.acked) {
      if (header.type !== FrameType.ack) return false;
      this.acked = true;
      this.onAcked?.();
      return true;
    }
    if (header.type === FrameType.data) return true;
    // A guest whose ACK a hang-up report dropped answers a repeated HELLO again; if the
    // first ACK did go out, this one is a duplicate: nothing to do.
    if (header.type === FrameType.ack) return true;
    if (header.type === FrameType.end) {
      this.push(null);
      if (this.sentEnd) this.socket.end();
      return true;
    }
    return false;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    let ok = true;
    this.socket.cork();
    for (const record of encodeData(this.nonce, chunks.map((c) => c.chunk))) ok = this.socket.write(record);
    this.socket.uncork();
    if (ok) callback();
    else this.socket.once('drain', () => callback());
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sentEnd = true;
    this.socket.write(encodeHeader(FrameType.end, this.nonce), () => callback());
    if (this.readableEnded) this.socket.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stopHello();
    const socket = this.socket;
    if (!socket.destroyed) {
      // Say END so the guest ends its Connection at this exact byte, but only when it can
      // go out now: a guest that does not read must not keep QEMU's socket (and so the
      // port) busy. Without END the guest learns from the hang-up or the next HELLO.
      if (this.acked && !this.sentEnd && socket.writable && socket.writableLength === 0) {
        this.sentEnd = true;
        socket.end(encodeHeader(FrameType.end, this.nonce));
        if (socket.writableLength === 0) socket.once('finish', () => socket.destroy());
        else socket.destroy();
      } else {
        socket.destroy();
      }
    }
    callback(error);
  }

  ref(): this {
    this.socket.ref();
    return this;
  }

  unref(): this {
    this.socket.unref();
    return this;
  }
}

/**
 * Connect to QEMU's chardev socket and run the handshake. The promise settles when the
 * guest answered, the socket failed (ENOENT, ECONNREFUSED: no QEMU there), or `signal`
 * fired (dial timeout or abort: the caller turns that into the right error).
 */
export function dialHost(transport: Transport, target: HostSocketAddress, signal: AbortSignal): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: target.path, allowHalfOpen: true });
    let connection: HostConnection | undefined;
    const onAbort = (): void => {
      if (connection) connection.destroy();
      else socket.destroy();
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const onConnectError = (error: Error): void => {
      signal.removeEventListener('abort', onAbort);
      reject(error);
    };
    socket.once('error', onConnectError);
    socket.once('connect', () => {
      socket.removeListener('error', onConnectError);
      const pending = new HostConnection(socket, newNonce(), target.uri);
      connection = pending;
      pending.handshake().then(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve(toConnection(pending, { transport, localAddress: UNNAMED_HOST_URI, remoteAddress: target.uri }));
        },
        (error: Error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  });
}
