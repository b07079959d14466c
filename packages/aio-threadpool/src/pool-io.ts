import { loadBinding, type NativeBinding } from '@vmlink/native';
import { abortError, SystemError, throwIfAborted, validateInteger } from '@vmlink/errors';
import {
  closedError,
  fallocateModeBits,
  StatsRecorder,
  validateBuffers,
  validateFallocateMode,
  validateLength,
  validateOpOptions,
  validatePosition,
  watchAbort,
  type CacheFirstRead,
  type FallocateMode,
  type FdIo,
  type OpOptions,
  type Position,
  type ThreadStats,
} from '@vmlink/aio';
import { resolveOptions, type ResolvedThreadPoolOptions, type ThreadPoolOptions } from './options.js';
import { servedFromCache, SlowShare, withinCopyTime, workersToAdd } from './policy.js';

type ThreadPoolInstance = InstanceType<NativeBinding['ThreadPool']>;
/** Operation codes the native pool understands (native/types/threadpool.d.cts). */
type ThreadPoolOp = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

const OP_READ: ThreadPoolOp = 0;
const OP_WRITE: ThreadPoolOp = 1;
const OP_FSYNC: ThreadPoolOp = 2;
const OP_FDATASYNC: ThreadPoolOp = 3;
const OP_READ_CACHE_FIRST: ThreadPoolOp = 4;
const OP_FALLOCATE: ThreadPoolOp = 5;
const OP_TRUNCATE: ThreadPoolOp = 6;
const OP_DISCARD: ThreadPoolOp = 7;
const META_FIELDS = 8;
const COMPLETION_FIELDS = 6;
/** Completion flag: an OP_READ_CACHE_FIRST read's RWF_NOWAIT attempt brought it all. */
const NOWAIT_SERVED = 1;
/** Completion flag: an OP_DISCARD ran ioctl(BLKDISCARD) (a block device). */
const USED_BLKDISCARD = 2;
const TWO_32 = 2 ** 32;
const NO_BUFFERS: readonly Uint8Array[] = [];



/** A request between the JS call and its completion. */
interface Request {
  readonly id: number;
  readonly op: ThreadPoolOp;
  readonly fd: number;
  readonly buffers: readonly Uint8Array[];
  readonly position: Position;
  /** OP_FALLOCATE/OP_DISCARD: bytes; OP_FALLOCATE: the mode bits travel in `modeBits`. */
  readonly length: Position;
  readonly modeBits: number;
  readonly syscall: string;
  readonly resolve: (value: number) => void;
  readonly reject: (reason: Error) => void;
  /** Still in this tick's batch, not yet handed to the workers. */
  staged: boolean;
  signal: AbortSignal | undefined;
  /** Stops watching the signal (one listener per signal, shared by its requests). */
  unwatch: (() => void) | undefined;
  /** OP_READ_CACHE_FIRST: told whether the page cache served the read, before it resolves. */
  readonly onCached: ((cached: boolean) => void) | undefined;
}

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
  readonly #pool: ThreadPoolInstance;
  readonly #slowShare = new SlowShare();
  readonly #requests = new Map<number, Request>();
  #staged: Request[] = [];
  /** Aborted requests to withdraw in the next microtask. */
  #aborted: Request[] = [];
  #flushScheduled = false;
  #nextId = 0;
  #closing: Promise<void> | undefined;
  #whenIdle: (() => void) | undefined;

  constructor(options?: ThreadPoolOptions, recorder: StatsRecorder = new StatsRecorder()) {
    this.options = Object.freeze(resolveOptions(options));
    this.recorder = recorder;
    this.#binding = loadBinding();
    const { minThreads, maxThreads, idleTimeoutMs, maxHoldUs, maxHeld } = this.options;
    this.#pool = new this.#binding.ThreadPool({ minThreads, maxThreads, idleTimeoutMs, maxHoldUs, maxHeld }, (completions) => this.#complete(completions));
  }

  /** Workers alive now (or starting); minThreads while idle. */
  get threads(): number {
    return this.#pool.threads;
  }

  /** The worker counts now: current (alive or starting), idle, peak (most at once), min, max. */
  threadStats(): ThreadStats {
    return {
      current: this.threads,
      idle: this.#pool.idleThreads,
      peak: this.#pool.peakThreads,
      min: this.options.minThreads,
      max: this.options.maxThreads,
    };
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  readv(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#enqueue(OP_READ, 'preadv2', fd, () => validateBuffers(buffers), position, options);
  }

  /**
   * readv that tries the page cache alone first (preadv2 with RWF_NOWAIT on the worker)
   * and says whether it served the read whole; if not, the worker reads the usual way.
   * The io_submit backend uses it to tell when a cold file has warmed up, without a
   * NOWAIT probe in io_submit (where a miss starts readahead inside the loop's call).
   */
  async readvCacheFirst(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<CacheFirstRead> {
    let cached = false;
    const bytes = await this.#enqueue(OP_READ_CACHE_FIRST, 'preadv2', fd, () => validateBuffers(buffers), position, options, 0, 0, (served) => {
      cached = served;
    });
    return { bytes, cached };
  }

  writev(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    return this.#enqueue(OP_WRITE, 'pwritev2', fd, () => validateBuffers(buffers), position, options);
  }

  async fsync(fd: number, options?: OpOptions): Promise<void> {
    await this.#enqueue(OP_FSYNC, 'fsync', fd, () => NO_BUFFERS, 0, options);
  }

  async fdatasync(fd: number, options?: OpOptions): Promise<void> {
    await this.#enqueue(OP_FDATASYNC, 'fdatasync', fd, () => NO_BUFFERS, 0, options);
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
    await this.#enqueue(OP_FALLOCATE, 'fallocate', fd, () => NO_BUFFERS, offset, options, checkedLength, bits, undefined, 'offset');
  }

  /** ftruncate(2) on a worker. */
  async truncate(fd: number, size: Position, options?: OpOptions): Promise<void> {
    await this.#enqueue(OP_TRUNCATE, 'ftruncate', fd, () => NO_BUFFERS, size, options, 0, 0, undefined, 'size');
  }

  /** Punch-hole (keep size) on a file, ioctl(BLKDISCARD) on a block device, on a worker. */
  async discard(fd: number, offset: Position, length: Position, options?: OpOptions): Promise<void> {
    let checkedLength: Position;
    try {
      checkedLength = validateLength(length);
    } catch (error) {
      return Promise.reject(error);
    }
    await this.#enqueue(OP_DISCARD, 'fallocate', fd, () => NO_BUFFERS, offset, options, checkedLength, 0, undefined, 'offset');
  }

  /** Waits for every request in flight, then stops and joins the workers. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#requests.size > 0) await new Promise<void>((resolve) => (this.#whenIdle = resolve));
      this.#pool.destroy();
    })();
    return this.#closing;
  }

  #enqueue(
    op: ThreadPoolOp,
    syscall: string,
    fd: number,
    validate: () => readonly Uint8Array[],
    position: Position,
    options: OpOptions | undefined,
    length: Position = 0,
    modeBits = 0,
    onCached?: (cached: boolean) => void,
    positionName = 'position',
  ): Promise<number> {
    let buffers: readonly Uint8Array[];
    let signal: AbortSignal | undefined;
    try {
      buffers = validate();
      position = validatePosition(position, positionName);
      signal = validateOpOptions(options);
      validateInteger(fd, 'fd', 0, 0x7fff_ffff);
      if (this.closed) throw closedError(syscall);
      throwIfAborted(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<number>((resolve, reject) => {
      const request: Request = { id: this.#allocateId(), op, fd, buffers, position, length, modeBits, syscall, resolve, reject, staged: true, signal, unwatch: undefined, onCached };
      if (signal !== undefined) request.unwatch = watchAbort(signal, () => this.#abort(request));
      this.#requests.set(request.id, request);
      this.#staged.push(request);
      this.recorder.submitted();
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  #allocateId(): number {
    do this.#nextId = (this.#nextId + 1) >>> 0;
    while (this.#nextId === 0 || this.#requests.has(this.#nextId));
    return this.#nextId;
  }

  /** Hands this tick's requests to the workers in one native call. */
  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#staged.filter((request) => request.staged);
    this.#staged = [];
    if (batch.length === 0) return;
    // Plain indexed stores: this runs once per tick at hundreds of thousands of requests a
    // second, where a temporary array per request shows in the profile.
    const meta = new Uint32Array(batch.length * META_FIELDS);
    const buffers: Uint8Array[] = [];
    for (let i = 0; i < batch.length; i++) {
      const request = batch[i] as Request;
      const base = i * META_FIELDS;
      const position = request.position;
      meta[base] = request.id;
      meta[base + 1] = request.op;
      meta[base + 2] = request.fd;
      meta[base + 3] = request.op === OP_FALLOCATE ? request.modeBits : request.buffers.length;
      if (typeof position === 'bigint') {
        meta[base + 4] = Number(position & 0xffff_ffffn);
        meta[base + 5] = Number(position >> 32n);
      } else {
        meta[base + 4] = position % TWO_32;
        meta[base + 5] = Math.floor(position / TWO_32);
      }
      const length = request.length;
      if (typeof length === 'bigint') {
        meta[base + 6] = Number(length & 0xffff_ffffn);
        meta[base + 7] = Number(length >> 32n);
      } else if (length !== 0) {
        meta[base + 6] = length % TWO_32;
        meta[base + 7] = Math.floor(length / TWO_32);
      }
      for (const buffer of request.buffers) buffers.push(buffer);
      request.staged = false;
    }
    const started = performance.now();
    this.#pool.submit(meta, buffers);
    this.recorder.batch(batch.length, (performance.now() - started) * 1000);
    this.#grow();
  }

  /** Adds workers when requests wait with none idle and recent requests blocked (policy.ts). */
  #grow(): void {
    // workersToAdd gives 0 for fast requests when a worker exists (minThreads keeps one):
    // the warm path skips the native reads.
    if (this.#slowShare.value < this.options.growWhenSlowShare && this.options.minThreads > 0) return;
    const pool = this.#pool;
    const load = { threads: pool.threads, idleThreads: pool.idleThreads, queued: pool.queued, inFlight: pool.inFlight, maxThreads: this.options.maxThreads };
    const add = workersToAdd(load, this.#slowShare.value, this.options.growWhenSlowShare);
    if (add > 0) pool.spawn(add);
  }

  /**
   * A request's signal fired. A staged request never reaches the workers. Queued ones are
   * gathered and withdrawn together in a microtask, in one native call under one lock: a
   * signal shared by a big batch fires its callbacks one by one, and withdrawing each on
   * its own lets the workers take the later ones meanwhile.
   */
  #abort(request: Request): void {
    if (!this.#requests.has(request.id)) return;
    if (request.staged) {
      request.staged = false;
      this.#rejectAborted(request);
      return;
    }
    this.#aborted.push(request);
    if (this.#aborted.length === 1) queueMicrotask(() => this.#withdrawAborted());
  }

  #withdrawAborted(): void {
    const aborted = this.#aborted.filter((request) => this.#requests.has(request.id));
    this.#aborted = [];
    if (aborted.length === 0) return;
    const withdrawn = this.#pool.cancel(Uint32Array.from(aborted, (request) => request.id));
    // A request a worker already took completes and settles with its real result.
    aborted.forEach((request, i) => {
      if (withdrawn[i] === 1) this.#rejectAborted(request);
    });
  }

  #rejectAborted(request: Request): void {
    this.#settle(request);
    request.reject(abortError(request.signal));
    this.recorder.settled(false);
  }

  #complete(completions: Float64Array): void {
    this.#deliver(completions);
    // Requests may still wait behind busy workers: the submit-time check can miss them when
    // a woken worker preempts the loop thread and drains part of the queue first.
    if (this.#pool.queued > 0) this.#grow();
  }

  #deliver(completions: Float64Array): void {
    for (let i = 0; i < completions.length; i += COMPLETION_FIELDS) {
      const request = this.#requests.get(completions[i]!);
      if (request === undefined) continue;
      const result = completions[i + 1]!;
      const partial = completions[i + 2]!;
      const serviceUs = completions[i + 4]!;
      const flags = completions[i + 5]!;
      const bytes = result > 0 ? result : 0;
      this.recorder.queueWait(completions[i + 3]!);
      this.recorder.serviceTime(serviceUs);
      this.#slowShare.record(!withinCopyTime(serviceUs, bytes, this.options));
      this.#settle(request);
      request.onCached?.(servedFromCache((flags & NOWAIT_SERVED) !== 0, bytes, serviceUs, this.options));
      if (result >= 0) {
        this.recorder.settled(true);
        request.resolve(result);
      } else {
        this.recorder.settled(false);
        const syscall = request.op === OP_DISCARD && (flags & USED_BLKDISCARD) !== 0 ? 'ioctl' : request.syscall;
        request.reject(this.#systemError(-result, syscall, partial));
      }
    }
  }

  #settle(request: Request): void {
    this.#requests.delete(request.id);
    request.unwatch?.();
    if (this.#requests.size === 0) this.#whenIdle?.();
  }

  #systemError(errno: number, syscall: string, partial: number): Error {
    const error = new SystemError({ code: this.#binding.errnoName(errno), errno, syscall }) as SystemError & { bytesWritten?: number };
    if (partial > 0) error.bytesWritten = partial;
    return error;
  }
}
