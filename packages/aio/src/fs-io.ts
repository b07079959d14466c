import { fdatasync, fsync, read, readv, writev } from 'node:fs';
import { outOfRange, throwIfAborted } from '@vmlink/errors';
import { StatsRecorder } from './stats.js';
import { fsDiscard, fsFallocate, fsTruncate, validateFallocateMode, validateLength } from './space.js';
import type { FallocateMode, FdIo, OpOptions, Position } from './types.js';
import { normalizePosition, skipBytes, totalLength, validateBuffers, validateOpOptions, validatePosition } from './validate.js';

type Callback<T> = (error: NodeJS.ErrnoException | null, value: T) => void;

/**
 * FdIo on `node:fs` (libuv's thread pool): the portable reference every other backend is
 * compared with, and the fallback where the addon is missing. One request per libuv
 * call; writes loop until every byte is written or an error stops them.
 */
export class FsFdIo implements FdIo {
  readonly name = 'fs';
  readonly recorder: StatsRecorder;

  constructor(recorder: StatsRecorder = new StatsRecorder()) {
    this.recorder = recorder;
  }

  readv(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#run(options, () => {
      const bufs = validateBuffers(buffers);
      const pos = normalizePosition(validatePosition(position));
      return typeof pos === 'number' ? call<number>((cb) => readv(fd, bufs, pos, cb)) : readAtBigPosition(fd, bufs, pos);
    });
  }

  writev(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#run(options, () => {
      const bufs = validateBuffers(buffers);
      const pos = normalizePosition(validatePosition(position));
      // node:fs treats a bigint write position as "the current position": refuse it.
      if (typeof pos !== 'number') throw outOfRange('position', 'a safe integer for the fs backend writes', position);
      return writeAll(fd, bufs, pos);
    });
  }

  fsync(fd: number, options?: OpOptions): Promise<void> {
    return this.#run(options, () => call<void>((cb) => fsync(fd, (error) => cb(error, undefined))));
  }

  fdatasync(fd: number, options?: OpOptions): Promise<void> {
    return this.#run(options, () => call<void>((cb) => fdatasync(fd, (error) => cb(error, undefined))));
  }

  /** fallocate(2) on libuv's pool through the addon (node:fs has none); EOPNOTSUPP without it. */
  fallocate(fd: number, mode: FallocateMode, offset: Position, length: Position, options?: OpOptions): Promise<void> {
    return this.#run(options, () => fsFallocate(fd, validateFallocateMode(mode), validatePosition(offset, 'offset'), validateLength(length)));
  }

  /** ftruncate through node:fs (sizes up to 2^53). */
  truncate(fd: number, size: Position, options?: OpOptions): Promise<void> {
    return this.#run(options, () => fsTruncate(fd, validatePosition(size, 'size')));
  }

  /** Punch-hole on a file, BLKDISCARD on a block device, on libuv's pool through the addon. */
  discard(fd: number, offset: Position, length: Position, options?: OpOptions): Promise<void> {
    return this.#run(options, () => fsDiscard(fd, validatePosition(offset, 'offset'), validateLength(length)));
  }

  async #run<T>(options: OpOptions | undefined, start: () => Promise<T>): Promise<T> {
    throwIfAborted(validateOpOptions(options));
    const begin = performance.now();
    const pending = start();
    const submitted = performance.now();
    this.recorder.submitted();
    this.recorder.batch(1, (submitted - begin) * 1000);
    try {
      const value = await pending;
      this.recorder.settled(true);
      return value;
    } catch (error) {
      this.recorder.settled(false);
      throw error;
    } finally {
      this.recorder.serviceTime((performance.now() - submitted) * 1000);
    }
  }
}

function call<T>(start: (callback: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value))));
}

/** Positions past 2^53: node:fs readv cannot take them, fs.read takes a bigint. */
async function readAtBigPosition(fd: number, buffers: readonly Uint8Array[], position: bigint): Promise<number> {
  let total = 0;
  for (const buffer of buffers) {
    const n = await call<number>((cb) => read(fd, buffer, 0, buffer.byteLength, position + BigInt(total), cb));
    total += n;
    if (n < buffer.byteLength) break;
  }
  return total;
}

/** pwritev until done: a short write is retried for the rest; an error reports the partial count on the error. */
async function writeAll(fd: number, buffers: readonly Uint8Array[], position: number): Promise<number> {
  const total = totalLength(buffers);
  let done = 0;
  let rest = buffers;
  while (done < total) {
    try {
      const n = await call<number>((cb) => writev(fd, rest, position + done, cb));
      if (n === 0) break;
      done += n;
      rest = skipBytes(rest, n);
    } catch (error) {
      if (done > 0) (error as { bytesWritten?: number }).bytesWritten = done;
      throw error;
    }
  }
  return done;
}
