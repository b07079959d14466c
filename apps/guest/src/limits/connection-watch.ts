import type { Duplex } from 'node:stream';

export type WatchTimeout = 'idle' | 'frame';

export interface ConnectionWatchOptions {
  /** Close after this long with nothing received and no request in flight; 0: never. */
  readonly idleTimeoutMs: number;
  /** Close when a started frame is not complete after this long; 0: never. */
  readonly frameTimeoutMs: number;
  /** Bytes the frame decoder holds for an incomplete frame. */
  readonly bufferedBytes: () => number;
  /** Requests in flight (bodies included): a busy connection is never idle. */
  readonly busy: () => boolean;
  readonly onTimeout: (kind: WatchTimeout) => void;
  readonly now?: () => number;
}

/**
 * Idle and frame-completion timeouts of one connection, on its 'data' events (no polling:
 * each timer, when it fires, checks what happened since and re-arms for the rest).
 *
 * Frame completion: a frame counts as completed when a chunk leaves the decoder holding
 * fewer bytes than it held plus the chunk (it consumed something). A slowloris client
 * that trickles one frame byte by byte never completes it and is cut off; a fast upload
 * that always ends a chunk mid-frame completes frames all the time and is not.
 */
export class ConnectionWatch {
  private lastReceived: number;
  private partialSince: number | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private frameTimer: NodeJS.Timeout | undefined;
  private before = 0;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly connection: Duplex,
    private readonly options: ConnectionWatchOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.lastReceived = this.now();
    // Runs before the RPC decoder's own 'data' listener, and onAfter after it.
    connection.prependListener('data', this.onBefore);
    connection.on('data', this.onAfter);
    connection.once('close', () => this.stop());
    this.armIdle(options.idleTimeoutMs);
  }

  /** When the connection last received bytes (or last went from busy to idle). */
  get lastActivity(): number {
    return this.lastReceived;
  }

  /** A request just finished: idle time counts from now, not from its start. */
  touch(): void {
    this.lastReceived = this.now();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.frameTimer);
    this.connection.off('data', this.onBefore);
    this.connection.off('data', this.onAfter);
  }

  private readonly onBefore = (): void => {
    this.before = this.options.bufferedBytes();
  };

  private readonly onAfter = (chunk: Buffer): void => {
    if (this.stopped) return;
    const now = this.now();
    this.lastReceived = now;
    const after = this.options.bufferedBytes();
    if (after === 0) {
      this.partialSince = undefined;
    } else if (this.partialSince === undefined || after < this.before + chunk.length) {
      // A new partial frame, or progress (a frame completed): its clock starts now.
      this.partialSince = now;
      this.armFrame(this.options.frameTimeoutMs);
    }
  };

  private armIdle(ms: number): void {
    if (this.options.idleTimeoutMs <= 0 || this.stopped) return;
    this.idleTimer = setTimeout(() => {
      const idleFor = this.now() - this.lastReceived;
      if (this.options.busy()) this.armIdle(this.options.idleTimeoutMs);
      else if (idleFor >= this.options.idleTimeoutMs) this.fire('idle');
      else this.armIdle(this.options.idleTimeoutMs - idleFor);
    }, Math.max(1, ms));
    this.idleTimer.unref();
  }

  private armFrame(ms: number): void {
    if (this.options.frameTimeoutMs <= 0 || this.stopped || this.frameTimer !== undefined) return;
    this.frameTimer = setTimeout(() => {
      this.frameTimer = undefined;
      if (this.partialSince === undefined || this.stopped) return;
      // While we do not read (RPC backpressure), the client cannot finish its frame.
      if (this.connection.isPaused()) {
        this.partialSince = this.now();
        this.armFrame(this.options.frameTimeoutMs);
        return;
      }
      const waited = this.now() - this.partialSince;
      if (waited >= this.options.frameTimeoutMs) this.fire('frame');
      else this.armFrame(this.options.frameTimeoutMs - waited);
    }, Math.max(1, ms));
    this.frameTimer.unref();
  }

  private fire(kind: WatchTimeout): void {
    if (this.stopped) return;
    this.stop();
    this.options.onTimeout(kind);
  }
}
