/**
 * The @vmlink/aio contract: every backend (fs, threadpool, iosubmit, or a user's own)
 * implements AioBackend and hands out AioFile objects.
 */
import type { Stats } from 'node:fs';

/** A file offset in bytes: a safe integer >= 0, or a bigint up to 2^63-1. */
export type Position = number | bigint;

/** What a backend can do; compliance tests skip only what a capability says is absent. */
export interface AioCapabilities {
  /** Opens files with O_DIRECT and does aligned direct I/O. */
  readonly direct: boolean;
  /** Uses RWF_NOWAIT to detect I/O that would block, and routes it elsewhere. */
  readonly nowait: boolean;
  /** Submits many requests to the kernel (or worker threads) per JS<->C++ crossing. */
  readonly batch: boolean;
  /** Can cancel queued requests when their AbortSignal fires. */
  readonly cancel: boolean;
  /**
   * What happens to a misaligned O_DIRECT request: 'reject' (EINVAL naming the alignment,
   * the default when absent) or 'route' (done another way, e.g. through a bounce buffer).
   */
  readonly misalignedDirect?: 'reject' | 'route';
}

/** O_DIRECT alignment in bytes (statx STATX_DIOALIGN, or probed). 1 = no constraint. */
export interface Alignment {
  readonly memory: number;
  readonly offset: number;
  readonly length: number;
}

export interface OpOptions {
  /**
   * Aborting before the request is handed over rejects with an AbortError; a backend that
   * declares `cancel` also withdraws requests still queued. A request already running
   * completes and settles with its real result (so a write is never reported as undone).
   */
  signal?: AbortSignal;
}

/**
 * fallocate(2) modes by name (Linux mode bits):
 * - 'allocate': 0, reserve blocks, grow the size to offset+length if it was smaller;
 * - 'keep-size': FALLOC_FL_KEEP_SIZE, reserve blocks, the size stays;
 * - 'punch-hole': FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, free blocks, reads give zeros;
 * - 'zero-range': FALLOC_FL_ZERO_RANGE, reads give zeros, the size grows as for 'allocate';
 * - 'zero-range-keep-size': FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE.
 */
export type FallocateMode = 'allocate' | 'keep-size' | 'punch-hole' | 'zero-range' | 'zero-range-keep-size';

/** A space-management request on a file (what FdIo.fallocate/truncate/discard take, as one value). */
export type SpaceRequest =
  | { readonly op: 'fallocate'; readonly mode: FallocateMode; readonly offset: Position; readonly length: Position }
  | { readonly op: 'truncate'; readonly size: Position }
  | { readonly op: 'discard'; readonly offset: Position; readonly length: Position };

/** `open()` flags: a `node:fs` flag string ('r', 'r+', 'w', 'wx', 'a'...) or a number (fs.constants, may include O_DIRECT). */
export type OpenFlags = string | number;

export interface AioFile {
  readonly fd: number;
  readonly path: string;
  /** True when the file was opened with O_DIRECT. */
  readonly direct: boolean;
  readonly alignment: Alignment;
  readonly closed: boolean;
  /** Resolves to the number of bytes read (0 at EOF; short near EOF). */
  read(buffer: Uint8Array, position: Position, options?: OpOptions): Promise<number>;
  readv(buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number>;
  /** Resolves to the number of bytes written. */
  write(buffer: Uint8Array, position: Position, options?: OpOptions): Promise<number>;
  writev(buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number>;
  fsync(options?: OpOptions): Promise<void>;
  fdatasync(options?: OpOptions): Promise<void>;
  stat(): Promise<Stats>;
  /**
   * fallocate(2) on the file: reserve space ('allocate', 'keep-size'), deallocate
   * ('punch-hole': reads give zeros, the size stays), or zero a range ('zero-range',
   * 'zero-range-keep-size'). A file system that lacks the mode rejects with EOPNOTSUPP
   * (tmpfs has no zero-range); a bad mode is ERR_INVALID_ARG_VALUE naming it.
   */
  fallocate(mode: FallocateMode, offset: Position, length: Position, options?: OpOptions): Promise<void>;
  /** ftruncate(2): sets the file size (cuts, or extends with a hole). */
  truncate(size: Position, options?: OpOptions): Promise<void>;
  /**
   * Tells the storage a range is unused: punch-hole (keep size) on a regular file,
   * ioctl(BLKDISCARD) on a block device (the range must be sector-aligned there).
   * Reads of a discarded file range give zeros; a discarded device range is unspecified.
   */
  discard(offset: Position, length: Position, options?: OpOptions): Promise<void>;
  /** Waits for in-flight requests to settle, then closes the fd. Closing twice is a no-op. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export type AioRequest =
  | { op: 'read'; file: AioFile; buffer: Uint8Array; position: Position; signal?: AbortSignal }
  | { op: 'readv'; file: AioFile; buffers: readonly Uint8Array[]; position: Position; signal?: AbortSignal }
  | { op: 'write'; file: AioFile; buffer: Uint8Array; position: Position; signal?: AbortSignal }
  | { op: 'writev'; file: AioFile; buffers: readonly Uint8Array[]; position: Position; signal?: AbortSignal }
  | { op: 'fsync'; file: AioFile; signal?: AbortSignal }
  | { op: 'fdatasync'; file: AioFile; signal?: AbortSignal }
  | { op: 'fallocate'; file: AioFile; mode: FallocateMode; offset: Position; length: Position; signal?: AbortSignal }
  | { op: 'truncate'; file: AioFile; size: Position; signal?: AbortSignal }
  | { op: 'discard'; file: AioFile; offset: Position; length: Position; signal?: AbortSignal };

/** One result per request, in submission order, shaped like Promise.allSettled. */
export type AioResult =
  | { status: 'fulfilled'; value: number }
  | { status: 'rejected'; reason: Error };

/** A latency histogram summary in microseconds. */
export interface HistogramSummary {
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

export interface AioStats {
  readonly submitted: number;
  readonly completed: number;
  readonly failed: number;
  readonly inFlight: number;
  /** Requests per submission to the kernel or the workers. */
  readonly batchSize: HistogramSummary;
  /** Time spent inside the submitting call (io_submit): the blocking detector. */
  readonly submitTimeUs: HistogramSummary;
  /** From the JS call until the kernel or a worker took the request. */
  readonly queueWaitUs: HistogramSummary;
  /** From submission until completion. */
  readonly serviceTimeUs: HistogramSummary;
  /** Reads whose RWF_NOWAIT attempt returned EAGAIN and were retried on the fallback. */
  readonly nowaitFallbacks: number;
  /** Requests sent to the fallback backend by the blocking guard before submission. */
  readonly guardRouted: number;
  /** O_DIRECT requests rejected (strict) or routed because of misalignment. */
  readonly alignmentRejections: number;
  /** Worker threads, for backends that have an elastic pool (the thread pool). */
  readonly threads?: ThreadStats;
  /** What polling cost and brought, for backends that poll instead of sleeping (the thread pool). */
  readonly polling?: PollingStats;
}

/** The loop thread's waits for completions before it sleeps (a backend's polling). */
export interface PollingStats {
  /** Polling is on now (few requests in flight, and waits paying off). */
  readonly on: boolean;
  /** Loop turns that looked for a completion before sleeping (one was there, or they waited for one). */
  readonly polls: number;
  /** ... of which saw a completion in time (each spared the loop thread a sleep and a wake-up). */
  readonly hits: number;
  /** Microseconds the loop thread spent waiting, in all: CPU time polling cost. */
  readonly spentUs: number;
}

/** A worker pool's size: now, idle now, the most at once, and its bounds. */
export interface ThreadStats {
  /** Workers alive (or starting). */
  readonly current: number;
  /** Workers waiting for work. */
  readonly idle: number;
  /** The most workers alive at once so far. */
  readonly peak: number;
  readonly min: number;
  readonly max: number;
  /**
   * Workers per request in flight the pool may grow to now (the pool's ceiling: it starts
   * at the backend's threadsPerInFlight option and moves while running), when the backend
   * sizes itself that way.
   */
  readonly perInFlight?: number;
  /**
   * The Linux scheduling policy the workers run under ('batch': SCHED_BATCH, 'idle':
   * SCHED_IDLE), when the backend chooses one. A worker refused its policy runs 'normal'
   * (and says so here).
   */
  readonly scheduling?: 'batch' | 'idle' | 'normal';
  /** Why workers asked to run 'batch' or 'idle' do not: the errno name, e.g. "EPERM". */
  readonly schedulingError?: string;
  /** The CPUs the workers are held to (the thread pool's workerCpus); absent: wherever the scheduler puts them. */
  readonly cpus?: readonly number[];
  /** Why a worker is not on those CPUs: the errno name of the first refusal, e.g. "EINVAL". */
  readonly affinityError?: string;
}

/** How createBackend() came to this backend: what was asked for, and why this one. */
export interface BackendSelection {
  /** The name passed to createBackend ('auto' when none). */
  readonly requested: BackendName;
  /** The backend created (equals the backend's `name`). */
  readonly picked: string;
  /** Why: e.g. "the addon is built on linux-x64" or the error that made 'auto' fall back to 'fs'. */
  readonly reason: string;
  /** True when 'auto' wanted a native backend and fell back to the portable 'fs' one. */
  readonly fellBack: boolean;
}

export interface AioBackend {
  readonly name: string;
  readonly capabilities: AioCapabilities;
  /** Set by createBackend(): what it picked and why (absent on backends made directly). */
  readonly selection?: BackendSelection;
  open(path: string, flags?: OpenFlags, mode?: number): Promise<AioFile>;
  /** Submits a batch; one failure does not fail the others. */
  submit(requests: readonly AioRequest[]): Promise<AioResult[]>;
  stats(): AioStats;
  /** Closes every file still open and releases threads, contexts and fds. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Positioned I/O on a raw fd, without opening or owning it. The thread pool and the `fs`
 * reference implement it; the io_submit backend routes requests that would block in the
 * kernel to one of these (its "fallback").
 */
/** What FdIo.readvCacheFirst resolves to. */
export interface CacheFirstRead {
  /** Bytes read (0 at end of file). */
  readonly bytes: number;
  /** The page cache served the whole read: no disk I/O was needed. */
  readonly cached: boolean;
}

/** How a request reported through a callback pair ends (trackSettled, FdIo.transferChecked): call one of them once. */
export interface Settle<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

export interface FdIo {
  readonly name: string;
  readv(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number>;
  /**
   * Optional: a read (`isRead`) or write whose fd, buffers, position and signal the caller
   * has checked already (an FdFile has), ending through `settle` instead of a promise of its
   * own: a request then costs one promise, not a chain of two, which is what a hot path of
   * hundreds of thousands of requests a second pays for. readv/writev are then the checks
   * plus this.
   */
  transferChecked?(isRead: boolean, fd: number, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined, settle: Settle<number>): void;
  /**
   * Optional: readv that also says whether the page cache alone served it (the thread
   * pool has it). The io_submit backend uses it to see a cold file warm up.
   */
  readvCacheFirst?(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<CacheFirstRead>;
  writev(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number>;
  fsync(fd: number, options?: OpOptions): Promise<void>;
  fdatasync(fd: number, options?: OpOptions): Promise<void>;
  /**
   * Optional space management on the fd (the fs reference and the thread pool have them).
   * An FdFile whose FdIo lacks one uses the fs reference's (libuv's pool). Arguments are
   * already validated by the AioFile; an FdIo called directly validates them too.
   */
  fallocate?(fd: number, mode: FallocateMode, offset: Position, length: Position, options?: OpOptions): Promise<void>;
  truncate?(fd: number, size: Position, options?: OpOptions): Promise<void>;
  discard?(fd: number, offset: Position, length: Position, options?: OpOptions): Promise<void>;
  /**
   * Optional: a file's fd now does its I/O here (an FdFile calls it once made); returns
   * what to call once the file is closed. The thread pool learns the file's device from it
   * (where its workers run, workerCpus).
   */
  attach?(fd: number): () => void;
}

export type BackendName = 'auto' | 'threadpool' | 'iosubmit' | 'fs';

/** Options for createBackend(); each backend reads the ones it knows and ignores the rest. */
export interface BackendOptions {
  /** A fixed-size thread pool (threadpool): minThreads = maxThreads = threads. */
  readonly threads?: number;
  /** Workers the thread pool always keeps (default: the number of cores, at least 2). */
  readonly minThreads?: number;
  /** Most workers the thread pool grows to while requests block (default 64). */
  readonly maxThreads?: number;
  /** A thread-pool worker idle this long exits, down to minThreads (default 5000 ms). */
  readonly idleTimeoutMs?: number;
  /** io_submit: turn the blocking guard off (iosubmit). */
  readonly strict?: boolean;
  readonly [option: string]: unknown;
}

/**
 * How createBackend() builds a plugin's backend: a plugin package (e.g.
 * `@vmlink/aio-threadpool`) exports `createBackend: BackendFactory` next to its own named
 * factory. May throw ERR_VMLINK_UNSUPPORTED_PLATFORM / ERR_VMLINK_NATIVE_NOT_BUILT.
 */
export type BackendFactory = (options?: BackendOptions) => AioBackend | Promise<AioBackend>;
