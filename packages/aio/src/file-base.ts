import { close as closeFd, fstat, type Stats } from 'node:fs';
import { throwIfAborted } from '@vmlink/errors';
import { closedError, withPath } from './errors.js';
import { runSpaceRequest, validateSpaceRequest } from './space.js';
import type { AioFile, Alignment, FallocateMode, OpOptions, Position, Settle, SpaceRequest } from './types.js';
import { validateBuffer, validateBuffers, validateOpOptions, validatePosition } from './validate.js';

export type { Settle };

/** The data-moving AioFile calls. */
export type TransferOp = 'read' | 'readv' | 'write' | 'writev';
/** The flushing AioFile calls. */
export type SyncOp = 'fsync' | 'fdatasync';

export interface AioFileBaseInit {
  readonly fd: number;
  readonly path: string;
  readonly direct: boolean;
  readonly alignment: Alignment;
}

/**
 * What every AioFile over a raw fd does the same way, whatever does its I/O: argument
 * validation, EBADF after close, abort-before-start, the path on system errors, counting
 * requests in flight, and a close() that waits for them before closing the fd.
 * A backend implements `transfer` and `sync`; `stat` is fstat on the fd; `fallocate`,
 * `truncate` and `discard` go to `space`, which by default uses the fs reference's
 * (libuv's pool) and which a backend overrides to send them elsewhere.
 */
export abstract class AioFileBase implements AioFile {
  readonly fd: number;
  readonly path: string;
  readonly direct: boolean;
  readonly alignment: Alignment;
  /** Requests started and not settled; close() waits for 0. */
  #pending = 0;
  #whenIdle: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(init: AioFileBaseInit) {
    this.fd = init.fd;
    this.path = init.path;
    this.direct = init.direct;
    this.alignment = init.alignment;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  read(buffer: Uint8Array, position: Position, options?: OpOptions): Promise<number> {
    return this.#validated('read', validateOne, buffer, position, options);
  }

  readv(buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#validated('readv', validateBuffers, buffers, position, options);
  }

  write(buffer: Uint8Array, position: Position, options?: OpOptions): Promise<number> {
    return this.#validated('write', validateOne, buffer, position, options);
  }

  writev(buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#validated('writev', validateBuffers, buffers, position, options);
  }

  fsync(options?: OpOptions): Promise<void> {
    return this.track('fsync', options, (signal) => this.sync('fsync', signal));
  }

  fdatasync(options?: OpOptions): Promise<void> {
    return this.track('fdatasync', options, (signal) => this.sync('fdatasync', signal));
  }

  stat(): Promise<Stats> {
    return this.track('fstat', undefined, () => new Promise<Stats>((resolve, reject) => {
      fstat(this.fd, (error, stats) => (error ? reject(error) : resolve(stats)));
    }));
  }

  fallocate(mode: FallocateMode, offset: Position, length: Position, options?: OpOptions): Promise<void> {
    return this.#space('fallocate', { op: 'fallocate', mode, offset, length }, options);
  }

  truncate(size: Position, options?: OpOptions): Promise<void> {
    return this.#space('ftruncate', { op: 'truncate', size }, options);
  }

  discard(offset: Position, length: Position, options?: OpOptions): Promise<void> {
    return this.#space('discard', { op: 'discard', offset, length }, options);
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeWhenIdle();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * One read/readv/write/writev whose buffers and position are valid. Do any checks of
   * your own, then start it with `track(op, options, run)`.
   */
  protected abstract transfer(op: TransferOp, buffers: readonly Uint8Array[], position: Position, options: OpOptions | undefined): Promise<number>;

  /** fsync or fdatasync the fd; runs inside `track`, so the file is open and `signal` not aborted. */
  protected abstract sync(op: SyncOp, signal: AbortSignal | undefined): Promise<void>;

  /**
   * A fallocate/truncate/discard whose arguments are valid; runs inside `track`. By default
   * the fs reference's (node:fs ftruncate, the addon's fallocate on libuv's pool).
   */
  protected space(request: SpaceRequest, signal: AbortSignal | undefined): Promise<void> {
    return runSpaceRequest(undefined, this.fd, request, signal);
  }

  /** Closes what the file holds once nothing is in flight; by default the fd. */
  protected closeFds(): Promise<void> {
    return closeFdAsync(this.fd);
  }

  /** Called once after close() has closed the fds (or failed to): the backend forgets the file. */
  protected onClosed(): void {}

  /**
   * Starts a request: checks `options`, rejects with EBADF after close() and with an
   * AbortError when the signal already fired, then runs it and counts it in flight until
   * it settles. System errors get the file's path.
   */
  protected track<T>(syscall: string, options: OpOptions | undefined, run: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    return this.trackSettled<T>(syscall, options, (signal, settle) => {
      run(signal).then(
        (value) => settle.resolve(value),
        (error: unknown) => settle.reject(error),
      );
    });
  }

  /**
   * `track` for a request that reports its end through `settle` instead of a promise of
   * its own: one promise per request instead of a chain, which is what a hot path of
   * hundreds of thousands of requests a second pays for. `start` must call `settle`
   * exactly once; a synchronous throw counts as a rejection.
   */
  protected trackSettled<T>(syscall: string, options: OpOptions | undefined, start: (signal: AbortSignal | undefined, settle: Settle<T>) => void): Promise<T> {
    let signal: AbortSignal | undefined;
    try {
      signal = validateOpOptions(options);
      if (this.closed) throw closedError(syscall, this.path);
      throwIfAborted(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => {
      this.#pending++;
      let settled = false;
      const settle: Settle<T> = {
        resolve: (value) => {
          if (settled) return;
          settled = true;
          this.#settledOne();
          resolve(value);
        },
        reject: (error) => {
          if (settled) return;
          settled = true;
          this.#settledOne();
          reject(withPath(error, this.path));
        },
      };
      try {
        start(signal, settle);
      } catch (error) {
        settle.reject(error);
      }
    });
  }

  // The validator and its input come separately, so the hot calls allocate no closure.
  #validated<T>(op: TransferOp, validate: (input: T) => readonly Uint8Array[], input: T, position: Position, options: OpOptions | undefined): Promise<number> {
    let buffers: readonly Uint8Array[];
    let pos: Position;
    try {
      buffers = validate(input);
      pos = validatePosition(position);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.transfer(op, buffers, pos, options);
  }

  #space(syscall: string, unchecked: SpaceRequest, options: OpOptions | undefined): Promise<void> {
    let request: SpaceRequest;
    try {
      request = validateSpaceRequest(unchecked);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.track(syscall, options, (signal) => this.space(request, signal));
  }

  #settledOne(): void {
    this.#pending--;
    if (this.#pending === 0 && this.#whenIdle !== undefined) {
      const wake = this.#whenIdle;
      this.#whenIdle = undefined;
      wake();
    }
  }

  async #closeWhenIdle(): Promise<void> {
    if (this.#pending > 0) await new Promise<void>((resolve) => (this.#whenIdle = resolve));
    try {
      await this.closeFds();
    } finally {
      this.onClosed();
    }
  }
}

/** One buffer, checked, as the list `transfer` takes. */
function validateOne(buffer: unknown): readonly Uint8Array[] {
  return [validateBuffer(buffer)];
}

function closeFdAsync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => closeFd(fd, (error) => (error ? reject(error) : resolve())));
}
