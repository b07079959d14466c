import { fstat, open as openFd, type Stats } from 'node:fs';
import {
  alignmentOf,
  closedError,
  hasDirectFlag,
  StatsRecorder,
  validateOpenFlags,
  type AioBackend,
  type AioCapabilities,
  type AioFile,
  type AioRequest,
  type AioResult,
  type AioStats,
  type FdIo,
  type OpenFlags,
} from '@vmlink/aio';
import { assertLinux, invalidArgType, validateInteger, VmlinkError } from '@vmlink/errors';
import { defaultFallback, type Fallback } from './fallback.js';
import { IoSubmitFile, type FileServices } from './file.js';
import { KernelQueue } from './kernel-queue.js';
import { ioSubmitBinding } from './native.js';
import { validateOptions, type IoSubmitBackendOptions } from './options.js';
import { WriteNowaitProbe, type WriteNowaitMode } from './write-nowait.js';

/**
 * The io_submit backend: one kernel AIO context, requests batched per tick, and (unless
 * strict) a blocking guard that sends what would block io_submit to a fallback FdIo.
 */
export class IoSubmitBackend implements AioBackend {
  readonly name = 'iosubmit';
  readonly capabilities: AioCapabilities;
  /** True when the blocking guard is off. */
  readonly strict: boolean;
  /** The FdIo the guard routes to (undefined when strict). */
  readonly fallback: FdIo | undefined;
  readonly #queue: KernelQueue;
  readonly #recorder: StatsRecorder;
  readonly #services: FileServices;
  readonly #writeNowait: WriteNowaitProbe;
  readonly #releaseFallback: () => Promise<void>;
  readonly #files = new Set<IoSubmitFile>();
  readonly #opening = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  /** Use createIoSubmitBackend(). */
  constructor(options: { strict: boolean; maxInFlight: number; submitThreshold: number; bufferedReads: 'nowait' | 'fallback'; fallback: Fallback | undefined }) {
    const binding = ioSubmitBinding();
    this.strict = options.strict;
    this.fallback = options.fallback?.io;
    this.#releaseFallback = options.fallback?.release ?? (() => Promise.resolve());
    this.#recorder = new StatsRecorder();
    this.#writeNowait = new WriteNowaitProbe();
    this.#queue = new KernelQueue(options.maxInFlight, options.submitThreshold, this.#recorder);
    this.#services = {
      queue: this.#queue,
      recorder: this.#recorder,
      fallback: this.fallback,
      bufferedReads: options.bufferedReads,
      writeNowait: this.#writeNowait,
      rwfNowait: binding.ioSubmitLayout.rwfNowait,
      errnoName: (errno) => binding.errnoName(errno),
    };
    this.capabilities = Object.freeze({
      direct: true,
      nowait: !options.strict,
      batch: true,
      cancel: true,
      misalignedDirect: options.strict ? 'reject' : 'route',
    });
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Requests in the kernel at once at most. */
  get maxInFlight(): number {
    return this.#queue.maxInFlight;
  }

  /** The context's eventfd (-1 after close), for leak checks. */
  get eventFd(): number {
    return this.#queue.eventFd;
  }

  /** Write RWF_NOWAIT per file system (st_dev): probing, on, or switched off. */
  writeNowaitModes(): ReadonlyMap<number, WriteNowaitMode> {
    return this.#writeNowait.modes();
  }

  async open(path: string, flags: OpenFlags = 'r', mode = 0o666): Promise<AioFile> {
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const checkedFlags = validateOpenFlags(flags);
    validateInteger(mode, 'mode', 0, 0o7777);
    if (this.closed) throw closedError('open', path);
    const opening = openWithStats(path, checkedFlags, mode);
    this.#opening.add(opening);
    let opened: { fd: number; stats: Stats };
    try {
      opened = await opening;
    } finally {
      this.#opening.delete(opening);
    }
    const direct = hasDirectFlag(checkedFlags);
    const file = new IoSubmitFile({
      fd: opened.fd,
      path,
      flags: checkedFlags,
      direct,
      alignment: alignmentOf(opened.fd, direct),
      stats: opened.stats,
      services: this.#services,
      onClosed: (closedFile) => this.#files.delete(closedFile),
    });
    this.#files.add(file);
    if (this.closed) {
      await file.close();
      throw closedError('open', path);
    }
    return file;
  }

  async submit(requests: readonly AioRequest[]): Promise<AioResult[]> {
    if (!Array.isArray(requests)) throw invalidArgType('requests', 'an Array of AioRequest', requests);
    const settled = await Promise.allSettled(requests.map((request: AioRequest) => startRequest(request)));
    return settled.map((result): AioResult =>
      result.status === 'fulfilled'
        ? { status: 'fulfilled', value: result.value }
        : { status: 'rejected', reason: result.reason instanceof Error ? result.reason : new Error(String(result.reason)) },
    );
  }

  stats(): AioStats {
    return this.#recorder.snapshot();
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeAll(): Promise<void> {
    await Promise.allSettled([...this.#opening]);
    // Each file waits for its requests; after that nothing is queued or in the kernel.
    await Promise.allSettled([...this.#files].map((file) => file.close()));
    this.#queue.destroy();
    await this.#releaseFallback();
  }
}

/**
 * Creates the io_submit backend (Linux only; needs the addon). Throws
 * ERR_VMLINK_UNSUPPORTED_PLATFORM off Linux, the loader's errors when the addon is
 * missing, and a system error naming /proc/sys/fs/aio-max-nr when io_setup says EAGAIN.
 */
export async function createIoSubmitBackend(options: IoSubmitBackendOptions = {}): Promise<IoSubmitBackend> {
  assertLinux('the io_submit aio backend');
  const binding = ioSubmitBinding();
  const checked = validateOptions(options, binding.ioSubmitLayout.maxInFlightLimit);
  let fallback: Fallback | undefined;
  if (!checked.strict) fallback = checked.fallback === undefined ? await defaultFallback() : { io: checked.fallback };
  try {
    return new IoSubmitBackend({ ...checked, fallback });
  } catch (error) {
    await fallback?.release?.();
    throw error;
  }
}

function openWithStats(path: string, flags: string | number, mode: number): Promise<{ fd: number; stats: Stats }> {
  return new Promise((resolve, reject) => {
    openFd(path, flags, mode, (openError, fd) => {
      if (openError) return reject(openError);
      fstat(fd, (statError, stats) => {
        if (statError) return reject(statError);
        resolve({ fd, stats });
      });
    });
  });
}

function startRequest(request: AioRequest): Promise<number> {
  if (request === null || typeof request !== 'object') return Promise.reject(invalidArgType('request', 'of type object', request));
  const file = request.file as AioFile | undefined;
  if (file === null || typeof file !== 'object' || typeof file.read !== 'function') {
    return Promise.reject(invalidArgType('request.file', 'an AioFile', file));
  }
  const options = request.signal === undefined ? undefined : { signal: request.signal };
  switch (request.op) {
    case 'read':
      return file.read(request.buffer, request.position, options);
    case 'readv':
      return file.readv(request.buffers, request.position, options);
    case 'write':
      return file.write(request.buffer, request.position, options);
    case 'writev':
      return file.writev(request.buffers, request.position, options);
    case 'fsync':
      return file.fsync(options).then(() => 0);
    case 'fdatasync':
      return file.fdatasync(options).then(() => 0);
    default:
      return Promise.reject(
        new VmlinkError(
          'ERR_INVALID_ARG_VALUE',
          `The request op must be one of read, readv, write, writev, fsync, fdatasync. Received ${String((request as { op?: unknown }).op)}`,
        ),
      );
  }
}
