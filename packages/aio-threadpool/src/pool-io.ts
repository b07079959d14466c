import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { loadBinding, type NativeBinding, type ThreadPoolInstance } from '@vmlink/native';
import { abortError, SystemError, throwIfAborted, validateInteger } from '@vmlink/errors';
import {
  BatchQueue,
  closedError,
  fallocateModeBits,
  StatsRecorder,
  validateBuffers,
  validateFallocateMode,
  validateLength,
  validateOpOptions,
  validatePosition,
  WITHDRAWN,
  type BatchCompletion,
  type BatchLayout,
  type CacheFirstRead,
  type FallocateMode,
  type FdIo,
  type OpOptions,
  type Position,
  type PollingStats,
  type Settle,
  type ThreadStats,
} from '@vmlink/aio';
import { resolveOptions, type ResolvedThreadPoolOptions, type ThreadPoolOptions } from './options.js';
import { servedFromCache, SlowShare, withinCopyTime, WorkerCeiling, workersToAdd } from './policy.js';
import { LoopReads } from './loop-reads.js';
import { busyShare, Polling, type PollSetting } from './polling.js';
import { SerialWrites } from './serial-writes.js';
import { allowedCpus, deviceInterrupts } from './device-interrupts.js';
import { completionCpus, leavesACpuOut, WorkerCpus } from './worker-cpus.js';

/** The native pool: a BatchEngine plus its worker counts. */
type ThreadPoolEngine = ThreadPoolInstance;

type PoolOp = 'read' | 'write' | 'fsync' | 'fdatasync' | 'readCacheFirst' | 'fallocate' | 'truncate' | 'discard' | 'readCachedHere';

/** What an op without buffers (fsync, fallocate, ...) passes for them. */
const NO_BUFFERS = Symbol('no buffers');

/** A request's arguments once checked (#check). */
interface Checked {
  readonly buffers: readonly Uint8Array[] | undefined;
  readonly position: Position;
  readonly signal: AbortSignal | undefined;
}

/** Completions per callback at most: the size of the completion table the pool fills. */
const COMPLETION_TABLE_SIZE = 256;
/** The pool hands requests over at the end of the tick only (one call per tick); workers start on the first. */
const POOL_SUBMIT_POLICY = { submitThreshold: Infinity, directSubmitThreshold: Infinity, directBatch: 0 } as const;

/**
 * FdIo on the addon's dedicated worker threads. Requests made within one tick are handed
 * over in one native call; completions come back in batches through one callback.
 * Aborting withdraws requests no worker has started yet. The pool grows (policy.ts) while
 * requests wait and block, up to maxThreads; idle workers exit after idleTimeoutMs.
 */
export class ThreadPoolIo implements FdIo {
  readonly name = 'threadpool';
  readonly recorder: StatsRecorder;
  /** The options in force, defaults filled in. */
  readonly options: ResolvedThreadPoolOptions;
  readonly #binding: NativeBinding;
  readonly #queue: BatchQueue<ThreadPoolEngine>;
  readonly #pool: ThreadPoolEngine;
  readonly #ops: Readonly<Record<PoolOp, number>>;
  /** The engine's completion flag bits (layout.flags), one definition in batch_layout.h. */
  readonly #flags: BatchLayout['flags'];
  readonly #slowShare = new SlowShare();
  readonly #ceiling: WorkerCeiling;
  /** One file's buffered writes run one at a time (its inode lock): they count as few toward growing. */
  readonly #serialWrites: SerialWrites;
  /** The loop's utilization, and the time it spent polling, when the ceiling last judged a window. */
  #lastLoopUse: EventLoopUtilization = performance.eventLoopUtilization();
  #lastPollSpentUs = 0;
  /** The loop thread's busy share since the last call, its polling not counted (a wait, not work). */
  readonly #loopBusy = (): number => {
    const now = performance.eventLoopUtilization();
    const since = performance.eventLoopUtilization(now, this.#lastLoopUse);
    const spentUs = this.#pool.pollStats()[2];
    this.#lastLoopUse = now;
    const busy = busyShare(since.active, since.idle, (spentUs - this.#lastPollSpentUs) / 1000);
    this.#lastPollSpentUs = spentUs;
    return busy;
  };
  readonly #polling: Polling;
  /** Reads of warm buffered files on the loop thread; undefined when cachedReadsOnLoop is off. */
  readonly #loopReads: LoopReads | undefined;
  /** Where the workers run, following the open files' devices (workerCpus 'completions'); undefined otherwise. */
  readonly #workerCpus: WorkerCpus | undefined;
  #closing: Promise<void> | undefined;

  constructor(options?: ThreadPoolOptions, recorder: StatsRecorder = new StatsRecorder()) {
    this.options = Object.freeze(resolveOptions(options));
    this.recorder = recorder;
    const { threadsPerInFlight, maxThreadsPerInFlight, riseWhenSleptShareBelow, riseWhenLoopBusyBelow, fallWhenSleptShareAbove, keepRiseWhenFasterBy } = this.options;
    this.#ceiling = new WorkerCeiling({
      start: threadsPerInFlight,
      max: maxThreadsPerInFlight,
      riseBelowSleptShare: riseWhenSleptShareBelow,
      riseBelowLoopBusy: riseWhenLoopBusyBelow,
      fallAboveSleptShare: fallWhenSleptShareAbove,
      keepRiseWhenFasterBy,
    });
    this.#serialWrites = new SerialWrites(this.options.bufferedWritesPerFile);
    this.#binding = loadBinding();
    const Pool = this.#binding.ThreadPool;
    const { layout } = Pool;
    this.#ops = layout.ops as Readonly<Record<PoolOp, number>>;
    this.#flags = layout.flags;
    const { minThreads, maxThreads, idleTimeoutMs, maxHoldUs, maxHeld, completionBudgetUs, workerScheduling } = this.options;
    this.#queue = new BatchQueue({
      layout,
      engine: (completions, onComplete) => new Pool({ minThreads, maxThreads, idleTimeoutMs, maxHoldUs, maxHeld, scheduling: workerScheduling, completions }, onComplete),
      capacity: Infinity,
      completionTableSize: COMPLETION_TABLE_SIZE,
      policy: POOL_SUBMIT_POLICY,
      slowSubmitUsPerRequest: Infinity,
      completionBudgetUs,
      recorder,
      afterSubmit: () => {
        this.#loopReads?.handedOver();
        this.#grow();
        this.#setPolling(this.#polling.submitted(this.#queue.inEngine));
      },
      // Requests may still wait behind busy workers: the submit-time check can miss them when
      // a woken worker preempts the loop thread and drains part of the queue first.
      afterComplete: (count) => {
        if (this.#pool.queued > 0) this.#grow();
        this.#setPolling(this.#polling.completed(count));
      },
    });
    this.#pool = this.#queue.engine;
    const { pollUs, pollWhenInFlightAtMost, pollWhileHitShareAbove, pollLoopWhileWorkersHeld } = this.options;
    this.#polling = new Polling(
      { pollUs, maxInFlight: pollWhenInFlightAtMost, minHitShare: pollWhileHitShareAbove, loopAtAnyDepthWhenWorkersHeld: pollLoopWhileWorkersHeld },
      () => {
        const [polls, hits] = this.#pool.pollStats();
        return { polls, hits };
      },
    );
    const { cachedReadsOnLoop, loopReadBudgetUs, cachedBaseUs, cachedBytesPerUs, coldReads } = this.options;
    if (cachedReadsOnLoop) this.#loopReads = new LoopReads({ budgetUs: loopReadBudgetUs, cachedBaseUs, cachedBytesPerUs, policy: coldReads });
    const { workerCpus } = this.options;
    const allowed = workerCpus === 'any' ? undefined : allowedCpus();
    if (typeof workerCpus !== 'string') {
      this.#pool.setWorkerCpus(Uint32Array.from(workerCpus));
      this.#polling.workersHeld = leavesACpuOut(workerCpus, allowed);
    }
    if (workerCpus === 'completions' && allowed !== undefined && allowed.length > 1) {
      this.#workerCpus = new WorkerCpus(allowed, (cpus) => {
        if (this.closed) return;
        this.#pool.setWorkerCpus(Uint32Array.from(cpus ?? []));
        this.#polling.workersHeld = leavesACpuOut(cpus, allowed);
      });
    }
  }

  /**
   * A file's fd joins the pool (FdIo.attach): with workerCpus 'completions' the workers
   * follow the completion interrupts of its device (worker-cpus.ts) until the returned
   * detach is called, when the file is closed. Its reads of sysfs and procfs are synchronous:
   * both live in memory, a few small files per open.
   */
  attach(fd: number): () => void {
    if (this.#workerCpus === undefined) return () => {};
    const interrupts = deviceInterrupts(fd);
    return this.#workerCpus.attach(interrupts === undefined ? undefined : completionCpus(interrupts));
  }

  /** The CPUs the workers are held to now (workerCpus); undefined: anywhere the scheduler puts them. */
  get workerCpus(): readonly number[] | undefined {
    const { workerCpus } = this.options;
    return typeof workerCpus === 'string' ? this.#workerCpus?.current : workerCpus;
  }

  /** Reads the page cache served on the loop thread, in the hand-over call, so far (cachedReadsOnLoop). */
  get readsOnLoop(): number {
    return this.#loopReads?.served ?? 0;
  }

  /** Reads tried in the hand-over call that the page cache could not serve (EAGAIN): each then went to a worker. */
  get loopReadMisses(): number {
    return this.#loopReads?.missed ?? 0;
  }

  /** Workers alive now (or starting); minThreads while idle. */
  get threads(): number {
    return this.#pool.threads;
  }

  /** The worker counts now: current (alive or starting), idle, peak (most at once), min, max, and the ceiling per request in flight. */
  threadStats(): ThreadStats {
    return {
      current: this.threads,
      idle: this.#pool.idleThreads,
      peak: this.#pool.peakThreads,
      min: this.options.minThreads,
      max: this.options.maxThreads,
      perInFlight: this.#ceiling.value,
      ...this.#scheduling(),
      ...this.#cpus(),
    };
  }

  /** The CPUs the workers are held to, and why a worker is not, when either applies. */
  #cpus(): Pick<ThreadStats, 'cpus' | 'affinityError'> {
    const cpus = this.workerCpus;
    const affinityError = this.#pool.affinityError;
    return { ...(cpus === undefined ? {} : { cpus: [...cpus] }), ...(affinityError === undefined ? {} : { affinityError }) };
  }

  /** The policy the workers run under; a refused policy leaves them 'normal' and says why. */
  #scheduling(): Pick<ThreadStats, 'scheduling' | 'schedulingError'> {
    const schedulingError = this.#pool.schedulingError;
    if (schedulingError !== undefined) return { scheduling: 'normal', schedulingError };
    return { scheduling: this.options.workerScheduling };
  }

  /** Workers per request in flight the pool may grow to now (threadsPerInFlight, risen; see WorkerCeiling). */
  get threadsPerInFlight(): number {
    return this.#ceiling.value;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * A positioned read on a worker; or, when the file is warm (cachedReadsOnLoop, see
   * loop-reads.ts), from the page cache in the call that hands the tick's requests over.
   */
  readv(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#enqueue('read', 'preadv2', fd, buffers, position, options);
  }

  /**
   * readv or writev without the checks (an FdFile made them), ending through `settle`: one
   * promise per request, the FdFile's (see FdIo.transferChecked).
   */
  transferChecked(isRead: boolean, fd: number, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined, settle: Settle<number>): void {
    if (!isRead) {
      this.#submit('write', 'pwritev2', fd, buffers, position, signal, settle);
      return;
    }
    const loopReads = this.#loopReads;
    const meter = loopReads?.meterFor(fd);
    if (loopReads !== undefined && meter !== undefined) {
      const route = loopReads.route(meter);
      if (route === 'here') {
        this.#submit('readCachedHere', 'preadv2', fd, buffers, position, signal, settle, 0, 0, (completion) => {
          const { flags, result, serviceUs } = completion;
          loopReads.settle(fd, meter, {
            served: (flags & this.#flags.servedHere) !== 0,
            missed: (flags & this.#flags.missedHere) !== 0,
            directFd: (flags & this.#flags.directFd) !== 0,
            bytes: result > 0 ? result : 0,
            serviceUs,
          });
        });
        return;
      }
      // A cold file's reads on the workers report whether the cache served them.
      if (route === 'cacheFirst') {
        this.#submit('readCacheFirst', 'preadv2', fd, buffers, position, signal, settle, 0, 0, (completion) =>
          meter.recordFallback(this.#servedFromCache(completion)),
        );
        return;
      }
    }
    this.#submit('read', 'preadv2', fd, buffers, position, signal, settle);
  }

  /**
   * readv that tries the page cache alone first (preadv2 with RWF_NOWAIT on the worker)
   * and says whether it served the read whole; if not, the worker reads the usual way.
   * The io_submit backend uses it to tell when a cold file has warmed up, without a
   * NOWAIT probe in io_submit (where a miss starts readahead inside the loop's call).
   */
  async readvCacheFirst(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<CacheFirstRead> {
    let cached = false;
    const bytes = await this.#enqueue('readCacheFirst', 'preadv2', fd, buffers, position, options, 0, 0, (completion) => {
      cached = this.#servedFromCache(completion);
    });
    return { bytes, cached };
  }

  writev(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#enqueue('write', 'pwritev2', fd, buffers, position, options);
  }

  async fsync(fd: number, options?: OpOptions): Promise<void> {
    await this.#enqueue('fsync', 'fsync', fd, NO_BUFFERS, 0, options);
  }

  async fdatasync(fd: number, options?: OpOptions): Promise<void> {
    await this.#enqueue('fdatasync', 'fdatasync', fd, NO_BUFFERS, 0, options);
  }

  /** fallocate(2) on a worker. */
  async fallocate(fd: number, mode: FallocateMode, offset: Position, length: Position, options?: OpOptions): Promise<void> {
    let bits: number;
    let checkedLength: Position;
    try {
      bits = fallocateModeBits(validateFallocateMode(mode));
      checkedLength = validateLength(length);
    } catch (error) {
      return Promise.reject(error);
    }
    await this.#enqueue('fallocate', 'fallocate', fd, NO_BUFFERS, offset, options, checkedLength, bits, undefined, 'offset');
  }

  /** ftruncate(2) on a worker. */
  async truncate(fd: number, size: Position, options?: OpOptions): Promise<void> {
    await this.#enqueue('truncate', 'ftruncate', fd, NO_BUFFERS, size, options, 0, 0, undefined, 'size');
  }

  /** Punch-hole (keep size) on a file, ioctl(BLKDISCARD) on a block device, on a worker. */
  async discard(fd: number, offset: Position, length: Position, options?: OpOptions): Promise<void> {
    let checkedLength: Position;
    try {
      checkedLength = validateLength(length);
    } catch (error) {
      return Promise.reject(error);
    }
    await this.#enqueue('discard', 'fallocate', fd, NO_BUFFERS, offset, options, checkedLength, 0, undefined, 'offset');
  }

  /** Waits for every request in flight, then stops and joins the workers. */
  close(): Promise<void> {
    this.#closing ??= this.#queue.idle().then(() => this.#pool.destroy());
    return this.#closing;
  }

  /** A request made on the FdIo itself: checked as an FdFile checks, then queued (reads and writes through transferChecked's routing). */
  #enqueue(
    op: PoolOp,
    syscall: string,
    fd: number,
    unchecked: readonly Uint8Array[] | typeof NO_BUFFERS,
    position: Position,
    options: OpOptions | undefined,
    length: Position = 0,
    mode = 0,
    observe?: (completion: BatchCompletion) => void,
    positionName = 'position',
  ): Promise<number> {
    let checked: Checked;
    try {
      checked = this.#check(syscall, fd, unchecked, position, options, positionName);
    } catch (error) {
      return Promise.reject(error);
    }
    const { buffers, signal } = checked;
    return new Promise<number>((resolve, reject) => {
      const settle = { resolve, reject };
      if (op === 'read' || op === 'write') this.transferChecked(op === 'read', fd, buffers ?? [], checked.position, signal, settle);
      else this.#submit(op, syscall, fd, buffers ?? NO_BUFFERS, checked.position, signal, settle, length, mode, observe);
    });
  }

  /** The arguments of a request made on the FdIo itself (an FdFile checks its own); throws the typed error. */
  #check(syscall: string, fd: number, unchecked: readonly Uint8Array[] | typeof NO_BUFFERS, position: Position, options: OpOptions | undefined, positionName: string): Checked {
    const buffers = unchecked === NO_BUFFERS ? undefined : validateBuffers(unchecked);
    const checkedPosition = validatePosition(position, positionName);
    const signal = validateOpOptions(options);
    validateInteger(fd, 'fd', 0, 0x7fff_ffff);
    if (this.closed) throw closedError(syscall);
    throwIfAborted(signal);
    return { buffers, position: checkedPosition, signal };
  }

  /** Queues one checked request on the BatchQueue; `settle` hears how it ended (`observe` first sees its completion). */
  #submit(
    op: PoolOp,
    syscall: string,
    fd: number,
    buffers: readonly Uint8Array[] | typeof NO_BUFFERS,
    position: Position,
    signal: AbortSignal | undefined,
    settle: Settle<number>,
    length: Position = 0,
    mode = 0,
    observe?: (completion: BatchCompletion) => void,
  ): void {
    // The pool closes only once its FdFiles are idle; a raw FdIo caller may race it.
    if (this.closed) {
      settle.reject(closedError(syscall));
      return;
    }
    this.recorder.submitted();
    const isWrite = op === 'write';
    if (isWrite) this.#serialWrites.submitted(fd);
    this.#queue.enqueue({
      op: this.#ops[op],
      fd,
      position,
      length,
      mode,
      // One buffer goes as the view itself: the addon then skips walking a list.
      buffers: buffers === NO_BUFFERS ? undefined : buffers.length === 1 ? buffers[0] : buffers,
      signal,
      done: (completion) => {
        // A withdrawn write may never have reached the hand-over: its flags need not say anything about the fd.
        if (isWrite) this.#serialWrites.completed(fd, completion.result === WITHDRAWN ? undefined : (completion.flags & this.#flags.directFd) !== 0);
        this.#settle(completion, syscall, signal, observe, settle);
      },
    });
  }

  /** Carries out Polling's decision (undefined: unchanged): the loop's wait and the workers' spin. */
  #setPolling(setting: PollSetting | undefined): void {
    if (setting !== undefined) this.#pool.setPolling(setting.loopUs, setting.workerUs);
  }

  /** What polling did so far (stats().polling). */
  pollingStats(): PollingStats {
    const [polls, hits, spentUs] = this.#pool.pollStats();
    return { on: this.#polling.on, polls, hits, spentUs };
  }

  /** Adds workers when requests wait with none idle and recent requests blocked (policy.ts). */
  #grow(): void {
    // workersToAdd gives 0 for fast requests when a worker exists (minThreads keeps one):
    // the warm path skips the native reads.
    if (this.#slowShare.value < this.options.growWhenSlowShare && this.options.minThreads > 0) return;
    const pool = this.#pool;
    // Writes held up only by an earlier write to the same buffered file need no worker of their own.
    const queued = Math.max(0, pool.queued - this.#serialWrites.excess);
    const load = { threads: pool.threads, idleThreads: pool.idleThreads, queued, inFlight: this.#parallelInFlight(), maxThreads: this.options.maxThreads, threadsPerInFlight: this.#ceiling.value };
    const add = workersToAdd(load, this.#slowShare.value, this.options.growWhenSlowShare);
    if (add > 0) pool.spawn(add);
  }

  /** The pool's requests in flight, one buffered file's writes beyond bufferedWritesPerFile not counted. */
  #parallelInFlight(): number {
    return Math.max(0, this.#pool.inFlight - this.#serialWrites.excess);
  }

  #settle(
    completion: BatchCompletion,
    syscall: string,
    signal: AbortSignal | undefined,
    observe: ((completion: BatchCompletion) => void) | undefined,
    settle: Settle<number>,
  ): void {
    const { result, flags, serviceUs } = completion;
    if (result === WITHDRAWN) {
      this.recorder.settled(false);
      settle.reject(abortError(signal));
      return;
    }
    const bytes = result > 0 ? result : 0;
    const slow = !withinCopyTime(serviceUs, bytes, this.options);
    this.#slowShare.record(slow);
    if (slow && (flags & this.#flags.servedHere) === 0) {
      const keep = this.#ceiling.record((flags & this.#flags.workerSlept) !== 0, this.#parallelInFlight(), this.#pool.threads, this.#loopBusy, performance.now());
      if (keep !== undefined) this.#pool.trim(keep);
    }
    observe?.(completion);
    if (result >= 0) {
      this.recorder.settled(true);
      settle.resolve(result);
      return;
    }
    this.recorder.settled(false);
    const used = completion.request.op === this.#ops.discard && (flags & this.#flags.usedBlkdiscard) !== 0 ? 'ioctl' : syscall;
    settle.reject(this.#systemError(-result, used, completion.partial));
  }

  /** A cache-first read's verdict: its RWF_NOWAIT attempt brought it all, in a copy's time. */
  #servedFromCache(completion: BatchCompletion): boolean {
    const bytes = completion.result > 0 ? completion.result : 0;
    return servedFromCache((completion.flags & this.#flags.nowaitServed) !== 0, bytes, completion.serviceUs, this.options);
  }

  #systemError(errno: number, syscall: string, partial: number): Error {
    const error = new SystemError({ code: this.#binding.errnoName(errno), errno, syscall }) as SystemError & { bytesWritten?: number };
    if (partial > 0) error.bytesWritten = partial;
    return error;
  }
}
