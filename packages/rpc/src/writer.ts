import type { Duplex } from 'node:stream';
import { RpcError, RpcErrorCode } from './errors.js';
import { encodeFrame, type Frame } from './frame.js';

/**
 * Writes frames to the connection. Control frames (responses, errors, credits) are
 * written at once; senders of requests and stream chunks first `await ready()`, so a
 * peer that stops reading stops them instead of growing our write buffer.
 */
export class FrameWriter {
  constructor(private readonly connection: Duplex) {}

  get open(): boolean {
    return !this.connection.destroyed && !this.connection.writableEnded;
  }

  /** True when a frame can be written now without waiting for 'drain'. */
  get canWrite(): boolean {
    return this.open && !this.connection.writableNeedDrain;
  }

  /**
   * Write one frame; false when the connection asks us to wait for 'drain' (or is gone).
   * The first frame of a tick leaves at once (one write: a lone call or reply is not held
   * back a tick, and the other side can start on it); frames that follow in the same
   * tick are corked and leave together in one writev on the next tick.
   */
  write(frame: Frame): boolean {
    if (!this.open) return false;
    const parts = encodeFrame(frame);
    const connection = this.connection;
    if (this.batching) {
      if (!this.corked) {
        this.corked = true;
        connection.cork();
      }
      return this.writeParts(parts);
    }
    this.batching = true;
    process.nextTick(this.endBatch);
    if (parts.length === 1) return connection.write(parts[0]);
    connection.cork(); // prefix+header and payload in one writev
    const ok = this.writeParts(parts);
    connection.uncork();
    return ok;
  }

  private writeParts(parts: readonly Buffer[]): boolean {
    let ok = this.connection.write(parts[0]);
    if (parts.length > 1) ok = this.connection.write(parts[1]);
    return ok;
  }

  /** True from a tick's first frame until the next tick. */
  private batching = false;
  private corked = false;
  private readonly endBatch = (): void => {
    this.batching = false;
    if (this.corked) {
      this.corked = false;
      this.connection.uncork();
    }
  };

  /** Bytes written and not yet taken by the other side's stream (corked frames included). */
  get queuedBytes(): number {
    return this.connection.writableLength;
  }

  /** The one wait for 'drain' that every waiting sender shares (two listeners, however many wait). */
  private drained: Promise<void> | undefined;

  /** Resolve when the connection can take more; reject if it closes first. */
  ready(): Promise<void> {
    if (!this.open) return Promise.reject(closedError());
    if (!this.connection.writableNeedDrain) return Promise.resolve();
    this.drained ??= new Promise<void>((resolve, reject) => {
      const done = (error?: Error): void => {
        this.drained = undefined;
        this.connection.off('drain', onDrain);
        this.connection.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void => done(closedError());
      this.connection.on('drain', onDrain);
      this.connection.on('close', onClose);
    });
    return this.drained;
  }
}

export function closedError(cause?: unknown): RpcError {
  return new RpcError(RpcErrorCode.CLOSED, 'the RPC connection is closed', { cause });
}
