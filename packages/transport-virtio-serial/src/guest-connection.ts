import { Duplex } from 'node:stream';

/**
 * What a guest Connection needs from the port that carries it.
 * @internal exported only so that the listener's `implements` clause resolves in the docs.
 */
export interface GuestPortLink {
  /** Queue records for the device; `callback` runs once the kernel took them (or they were dropped). */
  send(owner: GuestConnection, records: Uint8Array[], callback: (error: Error | null) => void): void;
  /** This Connection wants more input. */
  resumeReading(): void;
  /** This Connection is gone (`sentEnd`: it already said END). */
  connectionClosed(connection: GuestConnection): void;
  /** A Connection's ref state changed. */
  updateRef(): void;
}

/**
 * The guest end of one Connection. It shares the port's fd with the listener (one host
 * at a time), so reading, writing and ref counting go through the port.
 */
export class GuestConnection extends Duplex {
  sentEnd = false;
  refed = true;

  constructor(
    private readonly port: GuestPortLink,
    readonly nonce: bigint,
    private readonly encodeData: (chunks: readonly Uint8Array[]) => Uint8Array[],
    private readonly encodeEnd: () => Uint8Array,
  ) {
    super({ allowHalfOpen: true });
  }

  /** Bytes of a DATA record (kept in the readable buffer if nobody reads now). */
  deliver(bytes: Buffer): void {
    this.push(bytes);
  }

  /** The host said END: no more bytes from it. */
  hostEnded(): void {
    this.push(null);
  }

  override _read(): void {
    this.port.resumeReading();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.port.send(this, this.encodeData(chunks.map((c) => c.chunk)), callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.port.send(this, this.encodeData([chunk]), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sentEnd = true;
    this.port.send(this, [this.encodeEnd()], callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.port.connectionClosed(this);
    callback(error);
  }

  ref(): this {
    this.refed = true;
    this.port.updateRef();
    return this;
  }

  unref(): this {
    this.refed = false;
    this.port.updateRef();
    return this;
  }
}
