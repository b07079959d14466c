import { fstat, type Stats } from 'node:fs';
import {
  AioFileBase,
  misalignedError,
  misalignment,
  MISALIGNED,
  runSpaceRequest,
  skipBytes,
  totalLength,
  WITHDRAWN,
  type Alignment,
  type BatchBuffers,
  type BatchCompletion,
  type FdIo,
  type OpOptions,
  type Position,
  type Settle,
  type SpaceRequest,
  type StatsRecorder,
  type SyncOp,
  type TransferOp,
} from '@vmlink/aio';
import { abortError, SystemError } from '@vmlink/errors';
import { BufferedTwin } from './buffered-twin.js';
import { FileGuard, type GuardServices } from './file-guard.js';
import type { FileFacts, RouteReason } from './guard.js';
import type { KernelQueue } from './kernel.js';

const EAGAIN = 11;
const EOPNOTSUPP = 95;

/** What every file of one backend shares. */
export interface FileServices extends GuardServices {
  readonly queue: KernelQueue;
  /** The io_submit engine's op codes (its exported layout). */
  readonly ops: Readonly<Record<string, number>>;
  readonly recorder: StatsRecorder;
  /** Where the guard sends what would block; undefined in strict mode. */
  readonly fallback: FdIo | undefined;
  readonly rwfNowait: number;
  readonly errnoName: (errno: number) => string;
}

export interface IoSubmitFileInit {
  readonly fd: number;
  readonly path: string;
  /** The numeric open flags (O_DIRECT, O_APPEND, access mode), or the flag string. */
  readonly flags: string | number;
  readonly direct: boolean;
  readonly alignment: Alignment;
  /** fstat at open. */
  readonly stats: Stats;
  readonly services: FileServices;
  readonly onClosed: (file: IoSubmitFile) => void;
}

/**
 * An AioFile whose requests go to the backend's io_submit queue, or, when the file's
 * guard (file-guard.ts) says they would block, to the fallback FdIo. Every read and write
 * takes one path: route, then the kernel (`#toKernel`, with what follows its answer in
 * `#afterKernel`) or the fallback (`#toFallback`). fsync/fdatasync go to the kernel;
 * fallocate/truncate/discard to the fallback (io_submit has no such commands).
 */
export class IoSubmitFile extends AioFileBase {
  readonly #services: FileServices;
  readonly #onClosed: (file: IoSubmitFile) => void;
  readonly #guard: FileGuard;
  readonly #twin: BufferedTwin;

  /** @internal Files come from IoSubmitBackend.open(). */
  constructor(init: IoSubmitFileInit) {
    super(init);
    this.#services = init.services;
    this.#onClosed = init.onClosed;
    this.#guard = new FileGuard(init.services, init.direct, init.flags, init.stats);
    this.#twin = new BufferedTwin(init.fd, init.flags);
  }

  /** What the guard knows about this file (for tests and diagnostics). */
  get facts(): FileFacts {
    return this.#guard.facts;
  }

  /** Whether buffered reads of this file skip NOWAIT for now (its reads kept missing the cache). */
  get coldReads(): boolean {
    return this.#guard.coldReads;
  }

  protected override transfer(op: TransferOp, buffers: readonly Uint8Array[], position: Position, options: OpOptions | undefined): Promise<number> {
    return this.trackSettled<number>(op, options, (signal, settle) => {
      const done = new Counted(this.#services.recorder, settle);
      const isRead = op === 'read' || op === 'readv';
      const length = buffers.length === 1 ? (buffers[0] as Uint8Array).byteLength : totalLength(buffers);
      const route = this.#guard.route(isRead, position, length);
      if (route.to === 'fallback') follow(this.#toFallback(route.reason, isRead, buffers, position, signal), done);
      else this.#toKernel(op, isRead, buffers, position, length, route.nowait, signal, done);
    });
  }

  protected override sync(op: SyncOp, signal: AbortSignal | undefined): Promise<void> {
    const recorder = this.#services.recorder;
    recorder.submitted();
    return new Promise<void>((resolve, reject) => {
      const fail = (error: unknown): void => {
        recorder.settled(false);
        reject(error);
      };
      this.#enqueue(op, undefined, 0, 0, signal, ({ result: res }) => {
        if (res === WITHDRAWN) return fail(abortError(signal));
        if (res < 0) return fail(this.#systemError(-res, op));
        recorder.settled(true);
        resolve();
      });
    });
  }

  /**
   * fallocate/truncate/discard: on the fallback (the thread pool), as io_submit has no
   * such commands; then the guard re-reads size and holes, which these change.
   */
  protected override async space(request: SpaceRequest, signal: AbortSignal | undefined): Promise<void> {
    try {
      await runSpaceRequest(this.#services.fallback, this.fd, request, signal);
    } finally {
      // A failed request may still have changed the file (a partial fallocate).
      const stats = await fstatAsync(this.fd).catch(() => undefined);
      if (stats !== undefined) this.#guard.restat(stats);
    }
  }

  /** The buffered twin (if a misaligned request opened one), then the fd. */
  protected override async closeFds(): Promise<void> {
    await this.#twin.close();
    await super.closeFds();
  }

  protected override onClosed(): void {
    this.#onClosed(this);
  }

  /**
   * A read or write the guard lets into io_submit. A full transfer settles straight from
   * the completion (no promise per request on this path); everything else (alignment
   * refusals, NOWAIT fallbacks, errors, short transfers) goes through `#afterKernel`.
   */
  #toKernel(op: TransferOp, isRead: boolean, buffers: readonly Uint8Array[], position: Position, length: number, nowait: boolean, signal: AbortSignal | undefined, done: Settle<number>): void {
    // One buffer goes as a view (IOCB_CMD_PREAD/PWRITE), several as a list (PREADV/PWRITEV).
    const native: BatchBuffers = op === 'read' || op === 'write' ? buffers[0] : buffers;
    const rwFlags = nowait ? this.#services.rwfNowait : 0;
    this.#enqueue(isRead ? 'read' : 'write', native, position, rwFlags, signal, ({ result: res, slowSubmit }) => {
      if (res === WITHDRAWN) return done.reject(abortError(signal));
      if (isRead && nowait) this.#guard.nowaitReadEnded(res, slowSubmit, length);
      // Everything, or 0 at EOF without NOWAIT (a NOWAIT read may stop short where the
      // cache ends, which #afterKernel completes).
      if (res === length || (isRead && !nowait && res >= 0)) {
        if (!isRead) {
          if (nowait) this.#guard.nowaitWriteEnded(false);
          this.#guard.wrote(position, res);
        }
        done.resolve(res);
        return;
      }
      follow(this.#afterKernel(op, isRead, buffers, position, length, nowait, res, signal), done);
    });
  }

  /**
   * Queues one kernel request on the backend's BatchQueue. With a signal, an abort
   * withdraws it while it is still queued in JS (`done` hears WITHDRAWN); one in the
   * kernel settles with its real result.
   */
  #enqueue(op: 'read' | 'write' | SyncOp, buffers: BatchBuffers, position: Position, rwFlags: number, signal: AbortSignal | undefined, done: (completion: BatchCompletion) => void): void {
    this.#services.queue.enqueue({
      op: this.#services.ops[op] as number,
      fd: this.fd,
      position,
      buffers,
      rwFlags,
      alignment: this.direct ? this.alignment : undefined,
      direct: this.direct,
      signal,
      done,
    });
  }

  /** What follows the kernel's answer when it is not a plain full transfer. */
  async #afterKernel(op: TransferOp, isRead: boolean, buffers: readonly Uint8Array[], position: Position, length: number, nowait: boolean, res: number, signal: AbortSignal | undefined): Promise<number> {
    const services = this.#services;
    if (res === MISALIGNED) return this.#misaligned(op, isRead, buffers, position, signal);
    if (res < 0) {
      const errno = -res;
      if (nowait && services.fallback !== undefined && (errno === EAGAIN || errno === EOPNOTSUPP)) {
        // Would have blocked (EAGAIN), or NOWAIT is not supported here (EOPNOTSUPP):
        // the fallback does it without NOWAIT.
        if (errno === EOPNOTSUPP && isRead) this.#guard.readNowaitUnsupported();
        if (!isRead) this.#guard.nowaitWriteEnded(true);
        services.recorder.nowaitFallback();
        return this.#onFallback(isRead, this.fd, buffers, position, signal);
      }
      throw this.#systemError(errno, op);
    }
    if (isRead) {
      // A NOWAIT read may stop short where the cached part ends; the rest is read the
      // blocking way (on the fallback), which also tells a real EOF (0) apart.
      if (nowait && res > 0 && res < length && services.fallback !== undefined) {
        const rest = skipBytes(buffers, res);
        const restPosition = addPosition(position, res);
        return res + (await this.#onFallback(true, await this.#fallbackFd(rest, restPosition), rest, restPosition, signal));
      }
      return res;
    }
    if (nowait) this.#guard.nowaitWriteEnded(false);
    this.#guard.wrote(position, res);
    if (res > 0 && res < length) return this.#continueWrite(buffers, position, res, signal);
    return res;
  }

  /** A short write: the rest takes the same path; a later error carries the bytes written. */
  async #continueWrite(buffers: readonly Uint8Array[], position: Position, done: number, signal: AbortSignal | undefined): Promise<number> {
    const rest = skipBytes(buffers, done);
    const restPosition = addPosition(position, done);
    const restLength = totalLength(rest);
    try {
      const route = this.#guard.route(false, restPosition, restLength);
      const more =
        route.to === 'fallback'
          ? await this.#toFallback(route.reason, false, rest, restPosition, signal)
          : await new Promise<number>((resolve, reject) => this.#toKernel('writev', false, rest, restPosition, restLength, route.nowait, signal, { resolve, reject }));
      return done + more;
    } catch (error) {
      const partial = error as { bytesWritten?: number };
      partial.bytesWritten = done + (partial.bytesWritten ?? 0);
      throw error;
    }
  }

  /** O_DIRECT refused it (strict: EINVAL naming the rule); guarded, the fallback does it on the buffered twin. */
  async #misaligned(op: TransferOp, isRead: boolean, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    const services = this.#services;
    services.recorder.alignmentRejection();
    if (services.fallback === undefined) {
      const reason =
        misalignment(this.alignment, buffers, position) ??
        `memory, offset and length must be multiples of ${this.alignment.memory}, ${this.alignment.offset} and ${this.alignment.length}`;
      throw misalignedError(op, this.path, reason);
    }
    services.recorder.guardRouted();
    return this.#onFallback(isRead, await this.#twin.fd(), buffers, position, signal);
  }

  /** A request the guard routed before submission. */
  #toFallback(reason: RouteReason, isRead: boolean, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    this.#services.recorder.guardRouted();
    if (reason === 'cold') return this.#coldRead(buffers, position, signal);
    // Buffered files (the busiest routed path: ~100k requests a second in the stall suite)
    // need no twin: straight onto the fallback.
    if (!this.direct) return this.#onFallback(isRead, this.fd, buffers, position, signal);
    return this.#fallbackFd(buffers, position).then((fd) => this.#onFallback(isRead, fd, buffers, position, signal));
  }

  /** The fd a routed request uses: this one, or the buffered twin when O_DIRECT would refuse it. */
  async #fallbackFd(buffers: readonly Uint8Array[], position: Position): Promise<number> {
    if (!this.direct || misalignment(this.alignment, buffers, position) === undefined) return this.fd;
    this.#services.recorder.alignmentRejection();
    return this.#twin.fd();
  }

  /** A read of a cold file, on the fallback; where it can tell, whether the cache served it feeds the meter. */
  #coldRead(buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    if (this.direct) return this.#fallbackFd(buffers, position).then((fd) => this.#coldReadOn(fd, buffers, position, signal));
    return this.#coldReadOn(this.fd, buffers, position, signal);
  }

  async #coldReadOn(fd: number, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    const fallback = this.#services.fallback as FdIo;
    if (fallback.readvCacheFirst === undefined) return this.#onFallback(true, fd, buffers, position, signal);
    if (signal?.aborted === true) throw abortError(signal);
    const { bytes, cached } = await fallback.readvCacheFirst(fd, buffers, position, signal === undefined ? undefined : { signal });
    this.#guard.fallbackReadEnded(cached);
    return bytes;
  }

  /**
   * The request on the fallback with `fd` (one aborted while it waited for the twin never
   * starts); a write raises the known size, also when it fails part-way.
   */
  #onFallback(isRead: boolean, fd: number, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    if (signal?.aborted === true) return Promise.reject(abortError(signal));
    const fallback = this.#services.fallback as FdIo;
    const options = signal === undefined ? undefined : { signal };
    if (isRead) return fallback.readv(fd, buffers, position, options);
    return fallback.writev(fd, buffers, position, options).then(
      (written) => {
        this.#guard.wrote(position, written);
        return written;
      },
      (error: unknown) => {
        const partial = (error as { bytesWritten?: number }).bytesWritten;
        if (partial !== undefined) this.#guard.wrote(position, partial);
        throw error;
      },
    );
  }

  #systemError(errno: number, syscall: string): SystemError {
    return new SystemError({ code: this.#services.errnoName(errno), errno, syscall, path: this.path });
  }
}

/** A request's settle that also counts it in the backend's stats (submitted now, settled once). */
class Counted implements Settle<number> {
  readonly #recorder: StatsRecorder;
  readonly #settle: Settle<number>;

  constructor(recorder: StatsRecorder, settle: Settle<number>) {
    this.#recorder = recorder;
    this.#settle = settle;
    recorder.submitted();
  }

  // Methods, not per-request closures: the hot path calls them directly.
  resolve(bytes: number): void {
    this.#recorder.settled(true);
    this.#settle.resolve(bytes);
  }

  reject(error: unknown): void {
    this.#recorder.settled(false);
    this.#settle.reject(error);
  }
}

/** Settles `settle` from a promise (the fallback's, or #afterKernel's). */
function follow(promise: Promise<number>, settle: Settle<number>): void {
  promise.then(
    (bytes) => settle.resolve(bytes),
    (error: unknown) => settle.reject(error),
  );
}

function addPosition(position: Position, bytes: number): Position {
  return typeof position === 'bigint' ? position + BigInt(bytes) : position + bytes;
}

function fstatAsync(fd: number): Promise<Stats> {
  return new Promise<Stats>((resolve, reject) => fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))));
}
