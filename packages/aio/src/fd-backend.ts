import { open as openFd } from 'node:fs';
import { invalidArgType, validateInteger } from '@vmlink/errors';
import { alignmentOf, hasDirectFlag } from './align.js';
import { closedError, unknownOp } from './errors.js';
import { FdFile } from './fd-file.js';
import type { StatsRecorder } from './stats.js';
import type { AioBackend, AioCapabilities, AioFile, AioRequest, AioResult, AioStats, FdIo, OpenFlags } from './types.js';
import { validateOpenFlags } from './validate.js';

export interface FdBackendInit {
  readonly name: string;
  readonly capabilities: AioCapabilities;
  /** Does the I/O for every file this backend opens. */
  readonly io: FdIo;
  /** The recorder `io` reports into; `stats()` reads it. */
  readonly recorder: StatsRecorder;
  /** Releases what the io holds (threads, contexts) after every file is closed. */
  readonly release?: () => Promise<void>;
}

/**
 * An AioBackend whose files are raw fds opened with node:fs and whose I/O goes through an
 * FdIo. The fs backend and the thread pool are both this, with different FdIo.
 */
export class FdBackend implements AioBackend {
  readonly name: string;
  readonly capabilities: AioCapabilities;
  readonly #io: FdIo;
  readonly #recorder: StatsRecorder;
  readonly #release: (() => Promise<void>) | undefined;
  readonly #files = new Set<FdFile>();
  readonly #opening = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(init: FdBackendInit) {
    this.name = init.name;
    this.capabilities = Object.freeze({ ...init.capabilities });
    this.#io = init.io;
    this.#recorder = init.recorder;
    this.#release = init.release;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  async open(path: string, flags: OpenFlags = 'r', mode = 0o666): Promise<AioFile> {
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const checkedFlags = validateOpenFlags(flags);
    validateInteger(mode, 'mode', 0, 0o7777);
    if (this.closed) throw closedError('open', path);
    const opening = new Promise<number>((resolve, reject) => {
      openFd(path, checkedFlags, mode, (error, fd) => (error ? reject(error) : resolve(fd)));
    });
    this.#opening.add(opening);
    let fd: number;
    try {
      fd = await opening;
    } finally {
      this.#opening.delete(opening);
    }
    const direct = hasDirectFlag(checkedFlags);
    const file = new FdFile({
      fd,
      path,
      direct,
      alignment: alignmentOf(fd, direct),
      io: this.#io,
      recorder: this.#recorder,
      onClosed: (closed) => this.#files.delete(closed),
    });
    this.#files.add(file);
    // Opened while the backend was closing: do not leak the fd.
    if (this.closed) {
      await file.close();
      throw closedError('open', path);
    }
    return file;
  }

  async submit(requests: readonly AioRequest[]): Promise<AioResult[]> {
    if (!Array.isArray(requests)) throw invalidArgType('requests', 'an Array of AioRequest', requests);
    const pending = requests.map((request: AioRequest) => this.#start(request));
    const settled = await Promise.allSettled(pending);
    return settled.map((result): AioResult =>
      result.status === 'fulfilled' ? { status: 'fulfilled', value: result.value } : { status: 'rejected', reason: toError(result.reason) },
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
    await Promise.allSettled([...this.#files].map((file) => file.close()));
    await this.#release?.();
  }

  #start(request: AioRequest): Promise<number> {
    if (request === null || typeof request !== 'object') {
      return Promise.reject(invalidArgType('request', 'of type object', request));
    }
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
        return Promise.reject(unknownOp(request));
    }
  }
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
