import { invalidArgType, validateInteger } from '@vmlink/errors';
import { closedError } from './errors.js';
import type { StatsRecorder } from './stats.js';
import { submitRequests } from './submit.js';
import type { AioBackend, AioCapabilities, AioFile, AioRequest, AioResult, AioStats, OpenFlags } from './types.js';
import { validateOpenFlags } from './validate.js';

/**
 * What every AioBackend over raw fds does the same way: open() argument checks, EBADF
 * after close(), the files it handed out and the opens still running (so close() leaks no
 * fd), submit() through each request's file, and stats() from a StatsRecorder. A backend
 * implements `openFile` and, if it holds threads or kernel contexts, `release`.
 */
export abstract class AioBackendBase implements AioBackend {
  abstract readonly name: string;
  abstract readonly capabilities: AioCapabilities;
  /** Where the backend's I/O reports; stats() reads it. */
  protected readonly recorder: StatsRecorder;
  readonly #files = new Set<AioFile>();
  readonly #opening = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  protected constructor(recorder: StatsRecorder) {
    this.recorder = recorder;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  async open(path: string, flags: OpenFlags = 'r', mode = 0o666): Promise<AioFile> {
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const checkedFlags = validateOpenFlags(flags);
    validateInteger(mode, 'mode', 0, 0o7777);
    if (this.closed) throw closedError('open', path);
    const opening = this.openFile(path, checkedFlags, mode, (closed) => this.#files.delete(closed));
    this.#opening.add(opening);
    let file: AioFile;
    try {
      file = await opening;
    } finally {
      this.#opening.delete(opening);
    }
    this.#files.add(file);
    // Opened while the backend was closing: do not leak the fd.
    if (this.closed) {
      await file.close();
      throw closedError('open', path);
    }
    return file;
  }

  submit(requests: readonly AioRequest[]): Promise<AioResult[]> {
    return submitRequests(requests);
  }

  stats(): AioStats {
    return this.recorder.snapshot();
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Opens `path` (flags and mode already checked) and makes its AioFile, which must call
   * `onClosed(file)` once its fd is closed.
   */
  protected abstract openFile(path: string, flags: string | number, mode: number, onClosed: (file: AioFile) => void): Promise<AioFile>;

  /** Releases what the backend holds (threads, kernel contexts) once every file is closed. */
  protected release(): Promise<void> {
    return Promise.resolve();
  }

  async #closeAll(): Promise<void> {
    await Promise.allSettled([...this.#opening]);
    // Each file waits for its requests; after that nothing is in flight.
    await Promise.allSettled([...this.#files].map((file) => file.close()));
    await this.release();
  }
}
