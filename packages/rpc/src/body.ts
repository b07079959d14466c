import { Readable } from 'node:stream';
import { RpcError, RpcErrorCode } from './errors.js';
import type { FrameWriter } from './writer.js';

/** What may be sent as a streamed body. */
export type BodySource = Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array;

/**
 * The receiving end of a streamed body: a Readable whose buffer never exceeds `window`
 * bytes, because the sender may only send what we granted. Emits `'received'` (error?)
 * synchronously when the sender's END arrives (its last bytes may still be unread). Credit is returned as the
 * consumer reads (in `_read`), in batches of at least half a window, or at once when
 * the sender is close to running out.
 */
export class InboundBody extends Readable {
  private received = 0;
  private granted: number;
  private creditedConsumed = 0;
  private finished = false;

  constructor(
    private readonly window: number,
    private readonly grant: (bytes: number) => void,
    private readonly stop: () => void,
    /** Told (a microtask later) each time the consumer took bytes out of the buffer. */
    private readonly consumed?: () => void,
  ) {
    super({ highWaterMark: window });
    // What the remote or the connection does to a body (an END with an error, a close)
    // must never crash a process whose consumer is not listening yet, or any more (a body
    // waiting for a handler slot, one a handler kept): for-await, pipe and 'close' see it.
    this.on('error', () => undefined);
    this.granted = window;
    grant(window);
  }

  // Every way of consuming (read(), async iteration, 'data', pipe) goes through read().
  // _read alone is not enough: Node does not call it again until the next push, and a
  // peer that stopped reading its connection (a memory budget) sends no next push.
  override read(size?: number): Buffer | null {
    const chunk = super.read(size) as Buffer | null;
    if (chunk !== null && chunk.length > 0) queueMicrotask(this.afterConsumed);
    return chunk;
  }

  private readonly afterConsumed = (): void => {
    this.returnCredit();
    this.consumed?.();
  };

  /** Bytes held here that the consumer has not read yet. */
  get bufferedBytes(): number {
    return this.readableLength;
  }

  onChunk(payload: Buffer): void {
    if (this.finished || this.destroyed) return;
    this.received += payload.length;
    if (this.received > this.granted) {
      this.destroy(new RpcError(RpcErrorCode.STREAM_ABORTED, `the sender exceeded its credit (${this.received} > ${this.granted} bytes)`));
      return;
    }
    this.push(payload);
  }

  onEnd(error: RpcError | undefined): void {
    if (this.finished || this.destroyed) return;
    this.finished = true;
    // Synchronous, before the next frame is decoded: a handler that counts what its
    // remote holds (a body over, a request over) learns it in frame order.
    this.emit('received', error);
    if (error) this.destroy(error);
    else this.push(null);
  }

  override _read(): void {
    // Node calls _read() from inside read(), before the bytes being read leave the
    // buffer: count what was consumed once that read() has returned.
    queueMicrotask(() => this.returnCredit());
  }

  private returnCredit(): void {
    if (this.finished || this.destroyed) return;
    const consumed = this.received - this.readableLength;
    const fresh = consumed - this.creditedConsumed;
    const senderLeft = this.granted - this.received;
    if (fresh > 0 && (fresh >= this.window / 2 || senderLeft < this.window / 2)) {
      this.creditedConsumed = consumed;
      this.granted += fresh;
      this.grant(fresh);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.finished) {
      this.finished = true;
      this.stop(); // tell the sender to stop: nobody will read the rest
    }
    callback(error);
  }
}

/** Sending-side credit: chunks wait here until the receiver grants bytes. */
export class CreditGate {
  private available = 0;
  private waiter: { resolve: (n: number) => void; reject: (e: Error) => void; max: number } | undefined;
  private failure: Error | undefined;
  private readonly onFailure = new Set<(error: Error) => void>();

  add(bytes: number): void {
    this.available += bytes;
    const waiter = this.waiter;
    if (waiter && this.available > 0) {
      this.waiter = undefined;
      waiter.resolve(this.takeNow(waiter.max));
    }
  }

  fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
    for (const reject of this.onFailure) reject(this.failure);
    this.onFailure.clear();
  }

  /**
   * Settles like `pending`, or rejects with the gate's failure as soon as the stream is
   * stopped: a producer that is quiet (a command printing nothing) must not hold a
   * cancelled stream open until its next chunk.
   */
  race<T>(pending: Promise<T>): Promise<T> {
    if (this.failure) {
      pending.catch(() => undefined);
      return Promise.reject(this.failure);
    }
    return new Promise<T>((resolve, reject) => {
      this.onFailure.add(reject);
      pending.then(
        (value) => {
          this.onFailure.delete(reject);
          resolve(value);
        },
        (error: unknown) => {
          this.onFailure.delete(reject);
          reject(error as Error);
        },
      );
    });
  }

  /** Wait for credit; resolves with how many bytes (1..max) may be sent now. */
  take(max: number): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.available > 0) return Promise.resolve(this.takeNow(max));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject, max }));
  }

  private takeNow(max: number): number {
    const n = Math.min(max, this.available);
    this.available -= n;
    return n;
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new RpcError(RpcErrorCode.STREAM_ABORTED, 'a body chunk must be a Uint8Array');
}

/** One iterator over any body source (a single buffer is a one-chunk body). */
function iterate(source: BodySource): AsyncIterator<unknown> | Iterator<unknown> {
  if (source instanceof Uint8Array) return [source][Symbol.iterator]();
  if (Symbol.asyncIterator in source) return (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  return (source as Iterable<unknown>)[Symbol.iterator]();
}

/**
 * Send `source` as stream `stream`: chunks of at most `chunkSize`, each waiting for
 * credit and for the connection to drain. Resolves when END is written; on failure
 * writes END with the error and rejects.
 */
export async function pumpBody(
  source: BodySource,
  stream: number,
  writer: FrameWriter,
  gate: CreditGate,
  chunkSize: number,
): Promise<void> {
  const iterator = iterate(source);
  try {
    for (;;) {
      const step = await gate.race(Promise.resolve(iterator.next()));
      if (step.done) break;
      const chunk = toBuffer(await step.value);
      for (let offset = 0; offset < chunk.length; ) {
        const n = await gate.take(Math.min(chunkSize, chunk.length - offset));
        await writer.ready();
        writer.write({ type: 'CHUNK', stream, payload: chunk.subarray(offset, offset + n) });
        offset += n;
      }
    }
    writer.write({ type: 'END', stream, error: undefined });
  } catch (error) {
    if (source instanceof Readable) source.destroy();
    // Tell the producer nobody will read on (like for-await does on an early exit); not
    // awaited: a producer may only notice at its next step.
    Promise.resolve(iterator.return?.()).catch(() => undefined);
    const rpcError = error instanceof RpcError ? error : new RpcError(RpcErrorCode.STREAM_ABORTED, `body source failed: ${(error as Error).message}`, { cause: error });
    writer.write({ type: 'END', stream, error: { code: rpcError.code, message: rpcError.message } });
    throw rpcError;
  }
}
