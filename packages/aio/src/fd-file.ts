import { misalignment } from './align.js';
import { closedError, misalignedError } from './errors.js';
import { AioFileBase, type SyncOp, type TransferOp } from './file-base.js';
import type { StatsRecorder } from './stats.js';
import { runSpaceRequest } from './space.js';
import type { Alignment, FdIo, OpOptions, Position, SpaceRequest } from './types.js';

export interface FdFileInit {
  readonly fd: number;
  readonly path: string;
  readonly direct: boolean;
  readonly alignment: Alignment;
  /** Executes the I/O. */
  readonly io: FdIo;
  /** Where alignment rejections are counted. */
  readonly recorder: StatsRecorder;
  /** Called once the fd is closed (the backend forgets the file). */
  readonly onClosed?: (file: FdFile) => void;
}

/**
 * An AioFile over a raw fd and an FdIo that does the I/O: AioFileBase plus O_DIRECT
 * alignment checks (a misaligned request is rejected with EINVAL before it starts).
 */
export class FdFile extends AioFileBase {
  readonly #io: FdIo;
  readonly #recorder: StatsRecorder;
  readonly #onClosed: ((file: FdFile) => void) | undefined;
  /** What the FdIo's attach returned: called once the fd is closed. */
  readonly #detach: (() => void) | undefined;

  constructor(init: FdFileInit) {
    super(init);
    this.#io = init.io;
    this.#recorder = init.recorder;
    this.#onClosed = init.onClosed;
    this.#detach = init.io.attach?.(init.fd);
  }

  protected override transfer(op: TransferOp, buffers: readonly Uint8Array[], position: Position, options: OpOptions | undefined): Promise<number> {
    if (this.closed) return Promise.reject(closedError(op, this.path));
    if (this.direct) {
      const reason = misalignment(this.alignment, buffers, position);
      if (reason !== undefined) {
        this.#recorder.alignmentRejection();
        return Promise.reject(misalignedError(op, this.path, reason));
      }
    }
    const isRead = op === 'read' || op === 'readv';
    const io = this.#io;
    if (io.transferChecked !== undefined) {
      // FileBase checked the arguments, trackSettled the signal: one promise per request.
      return this.trackSettled<number>(op, options, (signal, settle) => io.transferChecked?.(isRead, this.fd, buffers, position, signal, settle));
    }
    return this.track(op, options, (signal) =>
      isRead ? this.#io.readv(this.fd, buffers, position, { signal }) : this.#io.writev(this.fd, buffers, position, { signal }),
    );
  }

  protected override sync(op: SyncOp, signal: AbortSignal | undefined): Promise<void> {
    return op === 'fsync' ? this.#io.fsync(this.fd, { signal }) : this.#io.fdatasync(this.fd, { signal });
  }

  /** Through the FdIo when it has the operation, else the fs reference's. */
  protected override space(request: SpaceRequest, signal: AbortSignal | undefined): Promise<void> {
    return runSpaceRequest(this.#io, this.fd, request, signal);
  }

  protected override onClosed(): void {
    this.#detach?.();
    this.#onClosed?.(this);
  }
}
