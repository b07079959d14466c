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
   * Frames written in one tick leave in one writev: the first write corks the
   * connection and the uncork runs on the next tick.
   */
  write(frame: Frame): boolean {
    if (!this.open) return false;
    const parts = encodeFrame(frame);
    if (!this.corked) {
      this.corked = true;
      this.connection.cork();
      process.nextTick(this.uncork);
    }
    let ok = this.connection.write(parts[0]);
    if (parts.length > 1) ok = this.connection.write(parts[1]);
    return ok;
  }

  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.connection.uncork();
  };

  /** Resolve when the connection can take more; reject if it closes first. */
  ready(): Promise<void> {
    if (!this.open) return Promise.reject(closedError());
    if (!this.connection.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (error?: Error): void => {
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
  }
}

export function closedError(cause?: unknown): RpcError {
  return new RpcError(RpcErrorCode.CLOSED, 'the RPC connection is closed', { cause });
}
