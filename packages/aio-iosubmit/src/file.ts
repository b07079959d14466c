import { close as closeFd, constants as fsConstants, fstat, open as openFd, type Stats } from 'node:fs';
import {
  closedError,
  misalignedError,
  misalignment,
  totalLength,
  validateBuffer,
  validateBuffers,
  validateOpOptions,
  validatePosition,
  withPath,
  type AioFile,
  type Alignment,
  type FdIo,
  type OpOptions,
  type Position,
  type StatsRecorder,
} from '@vmlink/aio';
import { abortError, SystemError, throwIfAborted } from '@vmlink/errors';
import type { IoSubmitBuffers } from './native.js';
import { watchAbort } from './abort-watch.js';
import { routeRead, routeWrite, type FileFacts, type GuardPolicy, type Route } from './guard.js';
import type { KernelOp, KernelOutcome, KernelQueue } from './kernel-queue.js';
import type { WriteNowaitProbe } from './write-nowait.js';

const EAGAIN = 11;
const EOPNOTSUPP = 95;

/** What every file of one backend shares. */
export interface FileServices {
  readonly queue: KernelQueue;
  readonly recorder: StatsRecorder;
  /** Where the guard sends what would block; undefined in strict mode. */
  readonly fallback: FdIo | undefined;
  readonly bufferedReads: 'nowait' | 'fallback';
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

type TransferOp = 'read' | 'readv' | 'write' | 'writev';

/**
 * An AioFile whose requests go to the backend's io_submit queue, or, when the blocking
 * guard says they would block, to the fallback FdIo. Tracks the file size (fstat at open,
 * raised by completed writes) to recognise writes that extend the file.
 */
export class IoSubmitFile implements AioFile {
  readonly fd: number;
  readonly path: string;
  readonly direct: boolean;
  readonly alignment: Alignment;
  readonly #flags: string | number;
  readonly #dev: number;
  readonly #services: FileServices;
  readonly #onClosed: (file: IoSubmitFile) => void;
  /** Requests started and not settled; close() waits for 0. */
  #pending = 0;
  #whenIdle: (() => void) | undefined;
  #facts: FileFacts;
  #readNowait = true;
  #twin: Promise<number> | undefined;
  #closing: Promise<void> | undefined;

  constructor(init: IoSubmitFileInit) {
    this.fd = init.fd;
    this.path = init.path;
    this.direct = init.direct;
    this.alignment = init.alignment;
    this.#flags = init.flags;
    this.#dev = init.stats.dev;
    this.#services = init.services;
    this.#onClosed = init.onClosed;
    const size = init.stats.size;
    this.#facts = {
      direct: init.direct,
      append: isAppend(init.flags),
      sparse: init.stats.blocks * 512 < size,
      size,
    };
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** What the guard knows about this file (for tests and diagnostics). */
  get facts(): FileFacts {
    return this.#facts;
  }

  read(buffer: Uint8Array, position: Position, options?: OpOptions): Promise<number> {
    return this.#transfer('read', () => [validateBuffer(buffer)], position, options);
  }

  readv(buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#transfer('readv', () => validateBuffers(buffers), position, options);
  }

  write(buffer: Uint8Array, position: Position, options?: OpOptions): Promise<number> {
    return this.#transfer('write', () => [validateBuffer(buffer)], position, options);
  }

  writev(buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#transfer('writev', () => validateBuffers(buffers), position, options);
  }

  fsync(options?: OpOptions): Promise<void> {
    return this.#sync('fsync', options);
  }

  fdatasync(options?: OpOptions): Promise<void> {
    return this.#sync('fdatasync', options);
  }

  stat(): Promise<Stats> {
    if (this.closed) return Promise.reject(closedError('fstat', this.path));
    this.#pending++;
    return new Promise<Stats>((resolve, reject) => {
      fstat(this.fd, (error, stats) => {
        this.#settledOne();
        if (error) reject(withPath(error, this.path));
        else resolve(stats);
      });
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeWhenIdle();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeWhenIdle(): Promise<void> {
    if (this.#pending > 0) await new Promise<void>((resolve) => (this.#whenIdle = resolve));
    try {
      if (this.#twin !== undefined) {
        const twin = await this.#twin.catch(() => -1);
        if (twin >= 0) await closeAsync(twin);
      }
      await closeAsync(this.fd);
    } finally {
      this.#onClosed(this);
    }
  }

  #settledOne(): void {
    this.#pending--;
    if (this.#pending === 0 && this.#whenIdle !== undefined) {
      const wake = this.#whenIdle;
      this.#whenIdle = undefined;
      wake();
    }
  }

  /** Validation, EBADF after close, abort-before-start and stats around one request. */
  #start<T>(syscall: string, options: OpOptions | undefined, run: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    let signal: AbortSignal | undefined;
    try {
      signal = validateOpOptions(options);
      if (this.closed) throw closedError(syscall, this.path);
      throwIfAborted(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    const recorder = this.#services.recorder;
    recorder.submitted();
    this.#pending++;
    return run(signal).then(
      (value) => {
        recorder.settled(true);
        this.#settledOne();
        return value;
      },
      (error: unknown) => {
        recorder.settled(false);
        this.#settledOne();
        throw withPath(error, this.path);
      },
    );
  }

  #transfer(op: TransferOp, validate: () => readonly Uint8Array[], position: Position, options: OpOptions | undefined): Promise<number> {
    let buffers: readonly Uint8Array[];
    let pos: Position;
    try {
      buffers = validate();
      pos = validatePosition(position);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#start(op, options, (signal) => this.#run(op, buffers, pos, signal));
  }

  #sync(op: 'fsync' | 'fdatasync', options: OpOptions | undefined): Promise<void> {
    return this.#start(op, options, async (signal) => {
      const outcome = await this.#kernel(op, undefined, 0, 0, signal);
      if (outcome.kind === 'done' && outcome.res < 0) throw this.#systemError(-outcome.res, op);
    });
  }

  async #run(op: TransferOp, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined): Promise<number> {
    const services = this.#services;
    const isRead = op === 'read' || op === 'readv';
    const length = totalLength(buffers);
    const route = this.#route(isRead, position, length);
    if (route.to === 'fallback') {
      services.recorder.guardRouted();
      return this.#viaFallback(isRead, buffers, position, signal, await this.#fallbackFd(buffers, position));
    }

    const native: IoSubmitBuffers = op === 'read' || op === 'write' ? buffers[0] : buffers;
    const outcome = await this.#kernel(op, native, position, route.nowait ? services.rwfNowait : 0, signal);
    if (outcome.kind === 'misaligned') return this.#misaligned(op, isRead, buffers, position, signal);

    const res = outcome.res;
    if (res < 0) {
      const errno = -res;
      if (route.nowait && services.fallback !== undefined && (errno === EAGAIN || errno === EOPNOTSUPP)) {
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
      if (route.nowait && res > 0 && res < length && services.fallback !== undefined) {
        const rest = skipBytes(buffers, res);
        const restPosition = addPosition(position, res);
        return res + (await this.#viaFallback(true, rest, restPosition, signal, await this.#fallbackFd(rest, restPosition)));
      }
      return res;
    }

    if (route.nowait) services.writeNowait.succeeded(this.#dev);
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
    };
    if (isRead) return routeRead(this.#facts, policy);
    return routeWrite(this.#facts, Number(position) + length, policy);
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
      const withdraw = this.#services.queue.enqueue({
        op,
        fd: this.fd,
        position,
        buffers,
        rwFlags,
        alignment: this.direct ? this.alignment : undefined,
        settle: (outcome) => {
          unwatch?.();
          resolve(outcome);
        },
      });
      // Only a request still queued here can be withdrawn; one in the kernel settles with
      // its real result.
      if (signal !== undefined) unwatch = watchAbort(signal, () => withdraw() && reject(abortError(signal)));
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

function skipBytes(buffers: readonly Uint8Array[], count: number): Uint8Array[] {
  let left = count;
  const rest: Uint8Array[] = [];
  for (const buffer of buffers) {
    if (left >= buffer.byteLength) {
      left -= buffer.byteLength;
      continue;
    }
    rest.push(left > 0 ? buffer.subarray(left) : buffer);
    left = 0;
  }
  return rest;
}

function closeAsync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => closeFd(fd, (error) => (error ? reject(error) : resolve())));
}
