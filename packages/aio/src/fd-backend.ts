import { open as openFd } from 'node:fs';
import { alignmentOf, hasDirectFlag } from './align.js';
import { AioBackendBase } from './backend-base.js';
import { FdFile } from './fd-file.js';
import type { StatsRecorder } from './stats.js';
import type { AioCapabilities, AioFile, FdIo } from './types.js';

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
export class FdBackend extends AioBackendBase {
  readonly name: string;
  readonly capabilities: AioCapabilities;
  readonly #io: FdIo;
  readonly #release: (() => Promise<void>) | undefined;

  constructor(init: FdBackendInit) {
    super(init.recorder);
    this.name = init.name;
    this.capabilities = Object.freeze({ ...init.capabilities });
    this.#io = init.io;
    this.#release = init.release;
  }

  protected override async openFile(path: string, flags: string | number, mode: number, onClosed: (file: AioFile) => void): Promise<AioFile> {
    const fd = await new Promise<number>((resolve, reject) => {
      openFd(path, flags, mode, (error, opened) => (error ? reject(error) : resolve(opened)));
    });
    const direct = hasDirectFlag(flags);
    return new FdFile({ fd, path, direct, alignment: alignmentOf(fd, direct), io: this.#io, recorder: this.recorder, onClosed });
  }

  protected override async release(): Promise<void> {
    await this.#release?.();
  }
}
