import { close as closeFd, constants as fsConstants, open as openFd, type Stats } from 'node:fs';
import {
  AioFileBase,
  misalignedError,
  misalignment,
  skipBytes,
  totalLength,
  type Alignment,
  type FdIo,
  type OpOptions,
  type Position,
  type StatsRecorder,
  type SyncOp,
  type TransferOp,
} from '@vmlink/aio';
import { abortError, SystemError } from '@vmlink/errors';
import type { IoSubmitBuffers } from './native.js';
import { watchAbort } from './abort-watch.js';
import { ColdReadMeter } from './cold-reads.js';
import { routeRead, routeWrite, type FileFacts, type GuardPolicy, type Route } from './guard.js';
import type { KernelOp, KernelOutcome, KernelQueue } from './kernel-queue.js';
import type { WriteNowaitProbe } from './write-nowait.js';
import type { BufferedReads } from './options.js';

const EAGAIN = 11;
const EOPNOTSUPP = 95;

/** What every file of one backend shares. */
export interface FileServices {
  readonly queue: KernelQueue;
  readonly recorder: StatsRecorder;
  /** Where the guard sends what would block; undefined in strict mode. */
  readonly fallback: FdIo | undefined;
  readonly bufferedReads: BufferedReads;
  readonly writeNowait: WriteNowaitProbe;
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
 * An AioFile whose requests go to the backend's io_submit queue, or, when the blocking
 * guard says they would block, to the fallback FdIo. Tracks the file size (fstat at open,
 * raised by completed writes) to recognise writes that extend the file.
 */
export class IoSubmitFile extends AioFileBase {
  readonly #flags: string | number;
  readonly #dev: number;
  readonly #services: FileServices;
  readonly #onClosed: (file: IoSubmitFile) => void;
  #facts: FileFacts;
  #readNowait = true;
  readonly #coldReads: ColdReadMeter;
  #twin: Promise<number> | undefined;

  constructor(init: IoSubmitFileInit) {
    super(init);
    this.#flags = init.flags;
    this.#dev = init.stats.dev;
    this.#services = init.services;
    this.#onClosed = init.onClosed;
    const adaptive = init.services.bufferedReads === 'adaptive' && !init.direct;
    this.#coldReads = new ColdReadMeter(undefined, { fallbackReports: adaptive && init.services.fallback?.readvCacheFirst !== undefined });
    const size = init.stats.size;
    this.#facts = {
      direct: init.direct,
      append: isAppend(init.flags),
      sparse: init.stats.blocks * 512 < size,
      size,
    };
  }

  /** What the guard knows about this file (for tests and diagnostics). */
  get facts(): FileFacts {
    return this.#facts;
  }

  protected override transfer(op: TransferOp, buffers: readonly Uint8Array[], position: Position, options: OpOptions | undefined): Promise<number> {
    return this.trackSettled<number>(op, options, (signal, settle) => {
      const recorder = this.#services.recorder;
      recorder.submitted();
      const resolve = (bytes: number): void => {
        recorder.settled(true);
        settle.resolve(bytes);
      };
      const reject = (error: unknown): void => {
        recorder.settled(false);
        settle.reject(error);
      };
      if (signal === undefined && (op === 'read' || op === 'write')) this.#runDirect(op, buffers, position, resolve, reject);
      else this.#run(op, buffers, position, signal).then(resolve, reject);
    });
  }

  protected override sync(op: SyncOp, signal: AbortSignal | undefined): Promise<void> {
    return this.#counted(async () => {
      const outcome = await this.#kernel(op, undefined, 0, 0, signal);
      if (outcome.kind === 'done' && outcome.res < 0) throw this.#systemError(-outcome.res, op);
    });
  }

  /** The buffered twin (if a misaligned request opened one), then the fd. */
  protected override async closeFds(): Promise<void> {
    if (this.#twin !== undefined) {
      const twin = await this.#twin.catch(() => -1);
      if (twin >= 0) await closeAsync(twin);
    }
    await super.closeFds();
  }

  protected override onClosed(): void {
    this.#onClosed(this);
  }

  /** The backend's submitted/completed/failed counts around one request (stat() is not one). */
  #counted<T>(run: () => Promise<T>): Promise<T> {
    const recorder = this.#services.recorder;
    recorder.submitted();
    return run().then(
      (value) => {
        recorder.settled(true);
        return value;
      },
      (error: unknown) => {
        recorder.settled(false);
        throw error;
      },
    );
  }

  /**
   * The hot path of a single-buffer request without a signal: a request the guard lets
   * through goes to the kernel queue with a plain callback, and a plain full result settles
   * the caller's promise straight from the completion (no promise chain per request);
   * everything else (routing, NOWAIT fallbacks, short transfers, errors) goes the general
   * way through `#afterKernel`.
   */
  #runDirect(op: 'read' | 'write', buffers: readonly Uint8Array[], position: Position, resolve: (bytes: number) => void, reject: (error: unknown) => void): void {
    const isRead = op === 'read';
    const buffer = buffers[0] as Uint8Array;
    const length = buffer.byteLength;
    const route = this.#route(isRead, position, length);
    if (route.to === 'fallback') {
      if (!this.direct && route.reason === 'buffered') this.#routeBuffered(isRead, buffers, position, resolve, reject);
      else this.#run(op, buffers, position, undefined, route).then(resolve, reject);
      return;
    }
    const services = this.#services;
    services.queue.enqueue({
      op,
      fd: this.fd,
      position,
      buffers: buffer,
      rwFlags: route.nowait ? services.rwfNowait : 0,
      alignment: this.direct ? this.alignment : undefined,
      direct: this.direct,
      settle: (outcome) => {
        if (isRead && route.nowait) this.#recordNowaitRead(outcome, length);
        if (outcome.kind === 'done') {
          const res = outcome.res;
          // A read that got everything, or 0 at EOF without NOWAIT (a NOWAIT read may stop
          // short where the cache ends, which #afterKernel completes).
          if (isRead ? res === length || (res >= 0 && !route.nowait) : res === length) {
            if (!isRead) {
              if (route.nowait) services.writeNowait.succeeded(this.#dev);
              this.#wrote(position, res);
            }
            resolve(res);
            return;
          }
        }
        this.#afterKernel(op, isRead, buffers, position, length, route.nowait, outcome, undefined).then(resolve, reject);
      },
    });
  }

  /**
   * A buffered read or write the guard sends to the fallback, without a signal: straight
   * onto the fallback with this fd (the routed path of the stall suite's buffered writes
   * runs at ~100k requests a second, where each extra promise shows as GC in the loop).
   */
  #routeBuffered(isRead: boolean, buffers: readonly Uint8Array[], position: Position, resolve: (bytes: number) => void, reject: (error: unknown) => void): void {
    this.#services.recorder.guardRouted();
    const fallback = this.#services.fallback as FdIo;
    if (isRead) {
      fallback.readv(this.fd, buffers, position).then(resolve, reject);
      return;
    }
    fallback.writev(this.fd, buffers, position).then(
      (written) => {
        this.#wrote(position, written);
        resolve(written);
      },
      (error: unknown) => {
        const partial = (error as { bytesWritten?: number }).bytesWritten;
        if (partial !== undefined) this.#wrote(position, partial);
        reject(error);
      },
    );
  }

  /** The general path; `route` when the caller has already asked the guard. */
  async #run(op: TransferOp, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined, routed?: Route): Promise<number> {
    const services = this.#services;
    const isRead = op === 'read' || op === 'readv';
    const length = totalLength(buffers);
    const route = routed ?? this.#route(isRead, position, length);
    if (route.to === 'fallback') {
      services.recorder.guardRouted();
      if (route.reason === 'cold') return this.#coldRead(buffers, position, signal);
      return this.#viaFallback(isRead, buffers, position, signal, await this.#fallbackFd(buffers, position));
    }

    const native: IoSubmitBuffers = op === 'read' || op === 'write' ? buffers[0] : buffers;
    const outcome = await this.#kernel(op, native, position, route.nowait ? services.rwfNowait : 0, signal);
    if (isRead && route.nowait) this.#recordNowaitRead(outcome, length);
    return this.#afterKernel(op, isRead, buffers, position, length, route.nowait, outcome, signal);
  }

  /** What follows the kernel's answer: alignment refusals, NOWAIT fallbacks, errors, short transfers. */
  async #afterKernel(
    op: TransferOp,
    isRead: boolean,
    buffers: readonly Uint8Array[],
    position: Position,
    length: number,
    nowait: boolean,
    outcome: KernelOutcome,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const services = this.#services;
    if (outcome.kind === 'misaligned') return this.#misaligned(op, isRead, buffers, position, signal);

    const res = outcome.res;
    if (res < 0) {
      const errno = -res;
      if (nowait && services.fallback !== undefined && (errno === EAGAIN || errno === EOPNOTSUPP)) {
        // Would have blocked (EAGAIN), or NOWAIT is not supported here (EOPNOTSUPP):
        // the fallback does it without NOWAIT.
        if (errno === EOPNOTSUPP && isRead) this.#readNowait = false;
        if (!isRead) services.writeNowait.wouldBlock(this.#dev);
        services.recorder.nowaitFallback();
        return this.#viaFallback(isRead, buffers, position, signal, this.fd);
      }
      throw this.#systemError(errno, op);
    }
    if (isRead) {
      // A NOWAIT read may stop short where the cached part ends; the rest is read the
      // blocking way (on the fallback), which also tells a real EOF (0) apart.
      if (nowait && res > 0 && res < length && services.fallback !== undefined) {
        const rest = skipBytes(buffers, res);
        const restPosition = addPosition(position, res);
        return res + (await this.#viaFallback(true, rest, restPosition, signal, await this.#fallbackFd(rest, restPosition)));
      }
      return res;
    }

    if (nowait) services.writeNowait.succeeded(this.#dev);
    this.#wrote(position, res);
    if (res > 0 && res < length) return this.#continueWrite(buffers, position, res, signal);
    return res;
  }

  #route(isRead: boolean, position: Position, length: number): Route {
    const services = this.#services;
    const policy: GuardPolicy = {
      guard: services.fallback !== undefined,
      bufferedReads: services.bufferedReads,
      readNowait: this.#readNowait,
      writeNowait: services.writeNowait.enabled(this.#dev),
      coldReads: isRead && services.bufferedReads === 'adaptive' && !this.#facts.direct && this.#coldReads.skipNowait(),
    };
    if (isRead) return routeRead(this.#facts, policy);
    return routeWrite(this.#facts, Number(position) + length, policy);
  }

  /**
   * Feeds the cold-file meter of buffered files: a miss is EAGAIN, a read cut short where
   * the cache ends, or a read whose io_submit call did I/O (slowSubmit).
   */
  #recordNowaitRead(outcome: KernelOutcome, length: number): void {
    if (this.#facts.direct || this.#services.bufferedReads !== 'adaptive') return;
    const hit = outcome.kind === 'done' && outcome.slowSubmit !== true && (outcome.res === length || outcome.res === 0);
    this.#coldReads.record(hit);
  }

  /** Whether buffered reads of this file skip NOWAIT for now (its reads kept missing the cache). */
  get coldReads(): boolean {
    return this.#coldReads.cold;
  }

  /** A short write: the rest is written the same way; a later error carries the bytes written. */
  async #continueWrite(buffers: readonly Uint8Array[], position: Position, done: number, signal: AbortSignal | undefined): Promise<number> {
    const rest = skipBytes(buffers, done);
    try {
      return done + (await this.#run('writev', rest, addPosition(position, done), signal));
    } catch (error) {
      const partial = error as { bytesWritten?: number };
      partial.bytesWritten = done + (partial.bytesWritten ?? 0);
      throw error;
    }
  }

  async #misaligned(op: TransferOp, isRead: boolean, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    const services = this.#services;
    services.recorder.alignmentRejection();
    if (services.fallback === undefined) {
      const reason =
        misalignment(this.alignment, buffers, position) ??
        `memory, offset and length must be multiples of ${this.alignment.memory}, ${this.alignment.offset} and ${this.alignment.length}`;
      throw misalignedError(op, this.path, reason);
    }
    // O_DIRECT refuses it anywhere: the fallback does it on a buffered fd of the same file.
    services.recorder.guardRouted();
    return this.#viaFallback(isRead, buffers, position, signal, await this.#bufferedTwin());
  }

  /** The fd a routed request uses: this one, or the buffered twin when O_DIRECT would refuse it. */
  async #fallbackFd(buffers: readonly Uint8Array[], position: Position): Promise<number> {
    if (!this.direct || misalignment(this.alignment, buffers, position) === undefined) return this.fd;
    this.#services.recorder.alignmentRejection();
    return this.#bufferedTwin();
  }

  /** A read of a cold file, on the fallback; where it can tell, whether the cache served it feeds the meter. */
  async #coldRead(buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    const fallback = this.#services.fallback as FdIo;
    const fd = await this.#fallbackFd(buffers, position);
    if (fallback.readvCacheFirst === undefined) return this.#viaFallback(true, buffers, position, signal, fd);
    const { bytes, cached } = await fallback.readvCacheFirst(fd, buffers, position, signal === undefined ? undefined : { signal });
    this.#coldReads.recordFallback(cached);
    return bytes;
  }

  async #viaFallback(isRead: boolean, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined, fd: number): Promise<number> {
    const fallback = this.#services.fallback as FdIo;
    const options = signal === undefined ? undefined : { signal };
    if (isRead) return fallback.readv(fd, buffers, position, options);
    try {
      const written = await fallback.writev(fd, buffers, position, options);
      this.#wrote(position, written);
      return written;
    } catch (error) {
      const partial = (error as { bytesWritten?: number }).bytesWritten;
      if (partial !== undefined) this.#wrote(position, partial);
      throw error;
    }
  }

  #kernel(op: KernelOp, buffers: IoSubmitBuffers, position: Position, rwFlags: number, signal: AbortSignal | undefined): Promise<KernelOutcome> {
    return new Promise<KernelOutcome>((resolve, reject) => {
      let unwatch: (() => void) | undefined;
      const queue = this.#services.queue;
      const ticket = queue.enqueue({
        op,
        fd: this.fd,
        position,
        buffers,
        rwFlags,
        alignment: this.direct ? this.alignment : undefined,
      direct: this.direct,
        settle: (outcome) => {
          unwatch?.();
          resolve(outcome);
        },
      });
      // Only a request still queued here can be withdrawn; one in the kernel settles with
      // its real result.
      if (signal !== undefined) unwatch = watchAbort(signal, () => queue.withdraw(ticket) && reject(abortError(signal)));
    });
  }

  #wrote(position: Position, bytes: number): void {
    const end = Number(position) + bytes;
    if (bytes > 0 && end > this.#facts.size) this.#facts = { ...this.#facts, size: end };
  }

  /** The same file opened again without O_DIRECT (through /proc/self/fd), for misaligned requests. */
  #bufferedTwin(): Promise<number> {
    this.#twin ??= new Promise<number>((resolve, reject) => {
      const flags = typeof this.#flags === 'number' ? this.#flags : fsConstants.O_RDWR;
      const twinFlags = (flags & 3) | (flags & fsConstants.O_APPEND);
      openFd(`/proc/self/fd/${this.fd}`, twinFlags, (error, fd) => (error ? reject(error) : resolve(fd)));
    });
    return this.#twin;
  }

  #systemError(errno: number, syscall: string): SystemError {
    return new SystemError({ code: this.#services.errnoName(errno), errno, syscall, path: this.path });
  }
}

function isAppend(flags: string | number): boolean {
  return typeof flags === 'number' ? (flags & fsConstants.O_APPEND) !== 0 : flags.startsWith('a');
}

function addPosition(position: Position, bytes: number): Position {
  return typeof position === 'bigint' ? position + BigInt(bytes) : position + bytes;
}

function closeAsync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => closeFd(fd, (error) => (error ? reject(error) : resolve())));
}
