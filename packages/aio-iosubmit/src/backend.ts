import { fstat, open as openFd, type Stats } from 'node:fs';
import { AioBackendBase, alignmentOf, hasDirectFlag, StatsRecorder, type AioCapabilities, type AioFile, type FdIo } from '@vmlink/aio';
import { assertLinux } from '@vmlink/errors';
import { defaultFallback, type Fallback } from './fallback.js';
import { IoSubmitFile, type FileServices } from './file.js';
import { createKernelQueue, type KernelQueue } from './kernel.js';
import { ioSubmitBinding, ioSubmitEngineClass } from './native.js';
import { validateOptions, type IoSubmitBackendOptions, type ResolvedOptions } from './options.js';
import { WriteNowaitProbe, type WriteNowaitMode } from './write-nowait.js';

/**
 * The io_submit backend: one kernel AIO context, requests batched per tick, and (unless
 * strict) a blocking guard that sends what would block io_submit to a fallback FdIo.
 */
export class IoSubmitBackend extends AioBackendBase {
  readonly name = 'iosubmit';
  readonly capabilities: AioCapabilities;
  /** True when the blocking guard is off. */
  readonly strict: boolean;
  /** The FdIo the guard routes to (undefined when strict). */
  readonly fallback: FdIo | undefined;
  readonly #queue: KernelQueue;
  readonly #maxInFlight: number;
  readonly #services: FileServices;
  readonly #writeNowait: WriteNowaitProbe;
  readonly #releaseFallback: () => Promise<void>;

  /** @internal Use createIoSubmitBackend(). */
  constructor(options: Omit<ResolvedOptions, 'fallback'> & { fallback: Fallback | undefined }) {
    super(new StatsRecorder());
    const binding = ioSubmitBinding();
    this.strict = options.strict;
    this.#maxInFlight = options.maxInFlight;
    this.fallback = options.fallback?.io;
    this.#releaseFallback = options.fallback?.release ?? (() => Promise.resolve());
    this.#writeNowait = new WriteNowaitProbe(options.writeNowaitProbeWrites);
    this.#queue = createKernelQueue(options, this.recorder);
    this.#services = {
      queue: this.#queue,
      ops: ioSubmitEngineClass().layout.ops,
      recorder: this.recorder,
      fallback: this.fallback,
      guard: this.fallback !== undefined,
      bufferedReads: options.bufferedReads,
      coldReadPolicy: options.coldReads,
      fallbackReportsHits: this.fallback?.readvCacheFirst !== undefined,
      writeNowait: this.#writeNowait,
      rwfNowait: ioSubmitEngineClass().layout.rwfNowait,
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

  /** Requests in the kernel at once at most. */
  get maxInFlight(): number {
    return this.#maxInFlight;
  }

  /** The context's eventfd (-1 after close), for leak checks. */
  get eventFd(): number {
    return this.#queue.engine.eventFd;
  }

  /** Times the completion budget ran out and the rest of the completions waited for the next loop turn. */
  get completionTurnsDeferred(): number {
    return this.#queue.completionTurnsDeferred;
  }

  /** Write RWF_NOWAIT per file system (st_dev): probing, on, or switched off. */
  writeNowaitModes(): ReadonlyMap<number, WriteNowaitMode> {
    return this.#writeNowait.modes();
  }

  protected override async openFile(path: string, flags: string | number, mode: number, onClosed: (file: AioFile) => void): Promise<AioFile> {
    const { fd, stats } = await openWithStats(path, flags, mode);
    const direct = hasDirectFlag(flags);
    return new IoSubmitFile({ fd, path, flags, direct, alignment: alignmentOf(fd, direct), stats, services: this.#services, onClosed });
  }

  /** Called once every file has closed, so nothing is queued or in the kernel. */
  protected override async release(): Promise<void> {
    this.#queue.engine.destroy();
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
  const checked = validateOptions(options, ioSubmitEngineClass().layout.maxInFlightLimit);
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
