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

  /** Write one frame; false when the connection asks us to wait for 'drain' (or is gone). */
  write(frame: Frame): boolean {
    if (!this.open) return false;
    const parts = encodeFrame(frame);
    if (parts.length === 1) return this.connection.write(parts[0]);
    this.connection.cork();
    this.connection.write(parts[0]);
    const ok = this.connection.write(parts[1]);
    this.connection.uncork();
    return ok;
  }

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
