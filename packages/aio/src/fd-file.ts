import { close as closeFd, fstat, type Stats } from 'node:fs';
import { throwIfAborted } from '@vmlink/errors';
import { misalignment } from './align.js';
import { closedError, misalignedError, withPath } from './errors.js';
import type { StatsRecorder } from './stats.js';
import type { AioFile, Alignment, FdIo, OpOptions, Position } from './types.js';
import { validateBuffer, validateBuffers, validateOpOptions, validatePosition } from './validate.js';

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
 * An AioFile over a raw fd and an FdIo that does the I/O: validation, O_DIRECT alignment
 * checks, EBADF after close, and a close() that waits for requests in flight.
 */
export class FdFile implements AioFile {
  readonly fd: number;
  readonly path: string;
  readonly direct: boolean;
  readonly alignment: Alignment;
  readonly #io: FdIo;
  readonly #recorder: StatsRecorder;
  readonly #onClosed: ((file: FdFile) => void) | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(init: FdFileInit) {
    this.fd = init.fd;
    this.path = init.path;
    this.direct = init.direct;
    this.alignment = init.alignment;
    this.#io = init.io;
    this.#recorder = init.recorder;
    this.#onClosed = init.onClosed;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
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
    return this.#track('fsync', options, (signal) => this.#io.fsync(this.fd, { signal }));
  }

  fdatasync(options?: OpOptions): Promise<void> {
    return this.#track('fdatasync', options, (signal) => this.#io.fdatasync(this.fd, { signal }));
  }

  stat(): Promise<Stats> {
    return this.#track('fstat', undefined, () => new Promise<Stats>((resolve, reject) => {
      fstat(this.fd, (error, stats) => (error ? reject(error) : resolve(stats)));
    }));
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeWhenIdle();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeWhenIdle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    await new Promise<void>((resolve, reject) => closeFd(this.fd, (error) => (error ? reject(error) : resolve())));
    this.#onClosed?.(this);
  }

  #transfer(
    syscall: 'read' | 'readv' | 'write' | 'writev',
    validate: () => readonly Uint8Array[],
    position: Position,
    options: OpOptions | undefined,
  ): Promise<number> {
    let buffers: readonly Uint8Array[];
    let pos: Position;
    try {
      buffers = validate();
      pos = validatePosition(position);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed) return Promise.reject(closedError(syscall, this.path));
    if (this.direct) {
      const reason = misalignment(this.alignment, buffers, pos);
      if (reason !== undefined) {
        this.#recorder.alignmentRejection();
        return Promise.reject(misalignedError(syscall, this.path, reason));
      }
    }
    const isRead = syscall === 'read' || syscall === 'readv';
    return this.#track(syscall, options, (signal) =>
      isRead ? this.#io.readv(this.fd, buffers, pos, { signal }) : this.#io.writev(this.fd, buffers, pos, { signal }),
    );
  }

  #track<T>(syscall: string, options: OpOptions | undefined, run: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    let signal: AbortSignal | undefined;
    try {
      signal = validateOpOptions(options);
      if (this.closed) throw closedError(syscall, this.path);
      throwIfAborted(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    const request = run(signal).catch((error: unknown) => {
      throw withPath(error, this.path);
    });
    this.#inFlight.add(request);
    const forget = (): void => void this.#inFlight.delete(request);
    request.then(forget, forget);
    return request;
  }
}
