import { availableParallelism } from 'node:os';
import { DEFAULT_COLD_READ_POLICY, validateColdReadPolicy, type ColdReadPolicy, type ThreadStats } from '@vmlink/aio';
import { invalidArgType, outOfRange, validateInteger, validateObject } from '@vmlink/errors';

/**
 * How the pool sizes itself and judges its requests. Every number the native pool uses
 * is here, with its default; the native side only carries them out.
 */
export interface ThreadPoolOptions {
  /** A fixed-size pool: sets minThreads and maxThreads both (when they are not given). */
  readonly threads?: number;
  /** Workers always kept (default: the number of cores, at least 2; 0..256). */
  readonly minThreads?: number;
  /** Most workers the pool grows to when requests block (default 64, as QEMU's pool; 1..256). */
  readonly maxThreads?: number;
  /** A worker idle this long exits while more than minThreads live (default 5000 ms). */
  readonly idleTimeoutMs?: number;
  /**
   * Grow only while at least this share of recent completions were slow (did I/O): more
   * threads than cores only help requests that wait (default 0.25; 0 grows on any wait).
   */
  readonly growWhenSlowShare?: number;
  /** A request faster than this plus its bytes at cachedBytesPerUs was a copy, not I/O (default 20 us). */
  readonly cachedBaseUs?: number;
  /** The copy speed a cache hit beats, in bytes per microsecond (default 2000: 2 GB/s). */
  readonly cachedBytesPerUs?: number;
  /** Completion coalescing: the most a completion is held for a later one (default 200 us; 0 = never hold). */
  readonly maxHoldUs?: number;
  /** Completion coalescing: the most completions held together (default 16). */
  readonly maxHeld?: number;
  /**
   * Microseconds one event-loop turn spends settling completions (and what their
   * continuations run at once) before the rest waits for the next turn (default 500).
   */
  readonly completionBudgetUs?: number;
  /**
   * The pool grows to at most this many workers per request in flight, rounded up, at
   * first (default 0.375: 12 for 32 in flight); the ceiling then rises while the workers
   * are the limit, up to maxThreadsPerInFlight (see WorkerCeiling in policy.ts). Fewer
   * workers than requests keep the queue non-empty, so a worker that finishes one request
   * takes the next without sleeping (0.01..1).
   */
  readonly threadsPerInFlight?: number;
  /** The most the workers-per-request ceiling rises to (default 1, QEMU's one per request; threadsPerInFlight..1; equal: a fixed ceiling). */
  readonly maxThreadsPerInFlight?: number;
  /** The ceiling rises only while fewer than this share of recent requests had to wake a sleeping worker (default 0.1; 0 never rises). */
  readonly riseWhenSleptShareBelow?: number;
  /** ... and while the loop thread was busy less than this share of the time (default 0.75: on a CPU-bound loop more threads only take its CPU). */
  readonly riseWhenLoopBusyBelow?: number;
  /** The ceiling falls (down to threadsPerInFlight; the surplus workers leave) when more than this share of recent requests woke a worker (default 0.3; 1 never falls). */
  readonly fallWhenSleptShareAbove?: number;
  /**
   * A rise of the ceiling stays only if requests then complete faster by at least this share
   * (default 0.02; -1..1: a negative share tolerates a slower window, -1 keeps every rise, as
   * when the ceiling was judged by sleeps alone; see WorkerCeiling).
   */
  readonly keepRiseWhenFasterBy?: number;
  /**
   * Serve reads of warm buffered files on the loop thread with preadv2(RWF_NOWAIT), which
   * copies from the page cache or says EAGAIN, never waiting for the disk (default true).
   * A file starts on the workers and reads here only after a window of its reads was
   * served by the cache (coldReads); never on O_DIRECT fds. See loop-reads.ts.
   */
  readonly cachedReadsOnLoop?: boolean;
  /** Microseconds of such reads per loop turn; the rest go to the workers (default 500). */
  readonly loopReadBudgetUs?: number;
  /** The cold/warm meter's numbers for cachedReadsOnLoop (as the io_submit backend's); missing fields keep their defaults. */
  readonly coldReads?: Partial<ColdReadPolicy>;
  /**
   * Polling (see polling.ts): with few requests in flight, the loop thread waits up to this
   * many microseconds for a completion before it sleeps, and one worker as long for the
   * next request, which spares both a wake-up per request at the price of that CPU time
   * (default 100; 0 never polls; 0..10000).
   */
  readonly pollUs?: number;
  /** Poll only while at most this many requests are in flight (default: the number of cores, 0 on one core; 0..1024). */
  readonly pollWhenInFlightAtMost?: number;
  /** Stop polling for a while when fewer than this share of the loop's waits saw a completion in time (default 0.5; 0..1). */
  readonly pollWhileHitShareAbove?: number;
  /**
   * While the workers are held off one of the process's CPUs (workerCpus), the loop thread
   * polls at any depth, not only up to pollWhenInFlightAtMost: its wait then takes no CPU
   * from the workers (default true; the workers' own spin keeps the depth limit).
   */
  readonly pollLoopWhileWorkersHeld?: boolean;
  /**
   * The Linux scheduling policy of the workers: 'normal' (as the process's other threads,
   * the default), 'batch' (SCHED_BATCH) or 'idle' (SCHED_IDLE). A batch worker woken for a
   * request does not preempt the thread that woke it, so the event loop finishes its
   * hand-over (and its turn) before the workers it woke run: faster O_DIRECT reads at high
   * depth, but writers contending for one file's lock collapse. An idle worker runs only
   * when no other thread wants its CPU: the scheduler counts a CPU running only idle
   * threads as free and puts the process's other threads (V8's, the kernel's) there, away
   * from the loop thread, whose longest delays may shrink (reads at depth; not in every
   * run); but writers to one file lose, and any busy thread on the workers' CPUs starves
   * the pool (measured: one spinning thread on the held CPU cut 4 KiB reads at 32 in
   * flight from 158k to 3k ops/s). For read-mostly work on a machine whose CPUs serve this
   * process alone. See DEFAULT_WORKER_SCHEDULING.
   */
  readonly workerScheduling?: WorkerScheduling;
  /**
   * How many of one file's buffered (not O_DIRECT) writes in flight count when the pool
   * decides how far to grow (default 2; 1..256): the kernel runs them one at a time under
   * the file's inode lock, so more workers for them only queue there. See serial-writes.ts.
   */
  readonly bufferedWritesPerFile?: number;
  /**
   * Where the workers run: 'completions' (the default) holds them to the CPUs that take the
   * completion interrupts of the devices the open files are on, when those are fewer than
   * the process's CPUs (a single-queue disk's go to one; see worker-cpus.ts); 'any' leaves
   * them to the scheduler; a list of CPU numbers (0..1023) holds them there.
   */
  readonly workerCpus?: WorkerCpusOption;
}

/** ThreadPoolOptions.workerCpus. */
export type WorkerCpusOption = 'completions' | 'any' | readonly number[];

/** How the workers are scheduled (ThreadPoolOptions.workerScheduling): the policies stats().threads.scheduling names. */
export type WorkerScheduling = NonNullable<ThreadStats['scheduling']>;

/** The options with every default filled in. */
export interface ResolvedThreadPoolOptions {
  readonly minThreads: number;
  readonly maxThreads: number;
  readonly idleTimeoutMs: number;
  readonly growWhenSlowShare: number;
  readonly cachedBaseUs: number;
  readonly cachedBytesPerUs: number;
  readonly maxHoldUs: number;
  readonly maxHeld: number;
  readonly completionBudgetUs: number;
  readonly threadsPerInFlight: number;
  readonly maxThreadsPerInFlight: number;
  readonly riseWhenSleptShareBelow: number;
  readonly riseWhenLoopBusyBelow: number;
  readonly fallWhenSleptShareAbove: number;
  readonly keepRiseWhenFasterBy: number;
  readonly cachedReadsOnLoop: boolean;
  readonly loopReadBudgetUs: number;
  readonly coldReads: ColdReadPolicy;
  readonly pollUs: number;
  readonly pollWhenInFlightAtMost: number;
  readonly pollWhileHitShareAbove: number;
  readonly pollLoopWhileWorkersHeld: boolean;
  readonly workerScheduling: WorkerScheduling;
  readonly bufferedWritesPerFile: number;
  readonly workerCpus: WorkerCpusOption;
}

export const MAX_THREADS = 256;

export const DEFAULT_MAX_THREADS = 64;
export const DEFAULT_IDLE_TIMEOUT_MS = 5000;
export const DEFAULT_GROW_WHEN_SLOW_SHARE = 0.25;
/** A 4 KiB page-cache copy takes ~2 us here; a 4 KiB read from this machine's disk 70+ us. */
export const DEFAULT_CACHED_BASE_US = 20;
export const DEFAULT_CACHED_BYTES_PER_US = 2000;
/** Measured in paired 3 s runs: +6-10% IOPS on 4 KiB O_DIRECT reads at depth 32 (README). */
export const DEFAULT_MAX_HOLD_US = 200;
export const DEFAULT_MAX_HELD = 16;
/** As the io_submit backend's: half a millisecond of settling per loop turn keeps timers on time. */
export const DEFAULT_COMPLETION_BUDGET_US = 500;
/**
 * 4 KiB O_DIRECT random reads, 32 in flight, on 2 cores at load average 15-20 (3 s runs):
 * fixed 8-12 workers 23k-30k IOPS, 16 workers 25k, 20-32 workers (one per request)
 * 9k-15k; growing with 0.25 (8 workers) 17k-31k, with 1 (32 workers) 9k-18k. On the same
 * machine quiet (load < 3, 5 interleaved rounds against fio psync numjobs=32): 0.25 0.80x,
 * 0.375 (12 workers) 0.97x, 0.5 0.92x, 0.75 0.74x. 0.375 is best or near it in both.
 */
export const DEFAULT_THREADS_PER_IN_FLIGHT = 0.375;
/**
 * The same load on a slower disk (~80k IOPS, 2026-12-06; the rows above were a ~200k one):
 * 12 workers 0.74x of fio, 16 0.83x, 20 0.89x, 24 0.85x, 32 0.77x. No fixed ratio is best
 * on both, so the ceiling starts at 0.375 and rises (WorkerCeiling) as far as one per request.
 */
export const DEFAULT_MAX_THREADS_PER_IN_FLIGHT = 1;
/** Measured at 32 in flight: 1% of requests woke a worker at 16 workers, 6% at 20 (best), 33% at 24. */
export const DEFAULT_RISE_WHEN_SLEPT_SHARE_BELOW = 0.1;
/** Headroom on the loop thread; 0.3-0.4 at the knee above, where the disk is the limit. */
export const DEFAULT_RISE_WHEN_LOOP_BUSY_BELOW = 0.75;
/** 24 workers above (33% woke one) were past the best count; 20 (6%) at it. */
export const DEFAULT_FALL_WHEN_SLEPT_SHARE_ABOVE = 0.3;
/**
 * A 2% faster window keeps a rise. Steps toward the best count brought +3% to +15% here
 * (workers on the disk's interrupt CPU, 32 in flight: 16 -> 18 -> 20 workers), the step past
 * it -6%; windows of 4096 requests at one count drift by a few percent.
 */
export const DEFAULT_KEEP_RISE_WHEN_FASTER_BY = 0.02;

/**
 * 4 KiB O_DIRECT random reads, 2 in flight, against fio psync numjobs=2 (5 interleaved
 * rounds, 2026-12-06, ~30k IOPS disk): no polling 0.43-0.52x; 32 us 0.58-0.70x; 64 us
 * 0.87-0.93x; 100 us 0.82-1.03x (median 0.95x); 150 us about the same as 100.
 */
export const DEFAULT_POLL_US = 100;
/**
 * Same load, 64 us polling against none: 1 in flight 0.76-0.90x vs 0.54-0.62x; 2 in
 * flight as above; 4 in flight 0.59-0.75x vs 0.65-0.74x; 8 in flight 0.62-0.66x vs
 * 0.71-0.84x; 32 in flight 0.65-0.70x vs 0.81-0.90x (2 cores): polling pays while the
 * requests in flight do not outnumber the cores. On one core it never pays: the thread
 * that spins holds the only CPU the one it waits for needs (0: no polling). Those runs had
 * the workers anywhere; held off the loop thread's CPU, its polling pays at any depth (see
 * pollLoopWhileWorkersHeld and polling.ts).
 */
export function defaultPollWhenInFlightAtMost(cores = availableParallelism()): number {
  return cores >= 2 ? cores : 0;
}
/**
 * 'batch' measured on 2 cores (2026-12-07, 4 s runs, alternating with 'normal'): 4 KiB
 * O_DIRECT random reads at 32 in flight 128k-143k IOPS against 120k-124k (one worker per
 * request: 101k against 77k), the hand-over's p99 52 us against 144 us, 2 in flight the
 * same. But unaligned 2 KiB buffered writes to one cold file, 32 in flight, fell from
 * 15k-22k to 5.4k-5.6k ops/s and the loop delay's p99 rose from 0.8-1.1 ms to 2.9 ms: the
 * writers queue on the inode's lock, and a batch waiter spinning on the lock's owner is not
 * told to stop when another thread wakes (0.6 of the 2 cores in rwsem_down_write_slowpath
 * and rwsem_spin_on_owner). With bufferedWritesPerFile (2 writers per file) the collapse
 * is gone but 'batch' still lost there: 15.6k-16.3k against 21k-22k, p99 0.8-0.9 ms against
 * 0.5-0.6. So 'normal' by default; 'batch' for read-mostly loads.
 * 'idle' (2026-12-07, same machine): the loop delay's maximum at 32 in flight came down to
 * FileHandle's in alternating runs (3.8-4.0 ms against 5.5-8.6 for 'normal', same IOPS;
 * the stall suite's reads did not show it), but writers to one file lost 40-50% (appends
 * 5.9k-7.2k against 11.6k-11.9k ops/s) and one busy thread on the workers' CPU starved
 * the pool (3k ops/s against 158k): opt-in only.
 */
export const DEFAULT_WORKER_SCHEDULING: WorkerScheduling = 'normal';

/**
 * One writer in the inode lock and one ready to take it next: 32 unaligned 2 KiB writes in
 * flight to one cold file made 21k-28k writes/s on 2 workers, 20k-25k on 4, 15k on 8 and
 * 11k-13k on the 28-32 the pool grew to before (loop-delay p99 0.4-0.6 ms against 2-3 ms);
 * warm 4 KiB writes 135k-144k on 2, 119k-132k on 4, 92k-103k on 12.
 */
export const DEFAULT_BUFFERED_WRITES_PER_FILE = 2;
/** Workers follow the open files' completion interrupts (worker-cpus.ts). */
export const DEFAULT_WORKER_CPUS: WorkerCpusOption = 'completions';

/** A wait that sees no completion is CPU lost: stop when most are. */
export const DEFAULT_POLL_WHILE_HIT_SHARE_ABOVE = 0.5;

/** As completionBudgetUs: half a millisecond of page-cache copies per loop turn at most. */
export const DEFAULT_LOOP_READ_BUDGET_US = 500;

/** The default minimum: one thread per core, but at least 2 so one slow request cannot stall the rest. */
export function defaultThreadCount(): number {
  return Math.min(MAX_THREADS, Math.max(2, availableParallelism()));
}

function finite(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isFinite(value) || value < min || value > max) throw outOfRange(name, `>= ${min} and <= ${max}`, value);
  return value;
}

/** Checks the options (typed errors naming the bad one) and fills in the defaults. */
export function resolveOptions(options: unknown): ResolvedThreadPoolOptions {
  if (options === undefined) options = {};
  validateObject(options, 'options');
  const given = options as ThreadPoolOptions;
  const threads = given.threads === undefined ? undefined : validateInteger(given.threads, 'options.threads', 1, MAX_THREADS);
  const minThreads =
    given.minThreads === undefined ? (threads ?? Math.min(defaultThreadCount(), given.maxThreads ?? DEFAULT_MAX_THREADS)) : validateInteger(given.minThreads, 'options.minThreads', 0, MAX_THREADS);
  const maxThreads = given.maxThreads === undefined ? (threads ?? Math.max(DEFAULT_MAX_THREADS, minThreads)) : validateInteger(given.maxThreads, 'options.maxThreads', 1, MAX_THREADS);
  if (minThreads > maxThreads) throw outOfRange('options.minThreads', `<= options.maxThreads (${maxThreads})`, minThreads);
  const idleTimeoutMs = given.idleTimeoutMs === undefined ? DEFAULT_IDLE_TIMEOUT_MS : validateInteger(given.idleTimeoutMs, 'options.idleTimeoutMs', 1, 86_400_000);
  return {
    minThreads,
    maxThreads,
    idleTimeoutMs,
    growWhenSlowShare: given.growWhenSlowShare === undefined ? DEFAULT_GROW_WHEN_SLOW_SHARE : finite(given.growWhenSlowShare, 'options.growWhenSlowShare', 0, 1),
    cachedBaseUs: given.cachedBaseUs === undefined ? DEFAULT_CACHED_BASE_US : finite(given.cachedBaseUs, 'options.cachedBaseUs', 0, 1e6),
    cachedBytesPerUs: given.cachedBytesPerUs === undefined ? DEFAULT_CACHED_BYTES_PER_US : finite(given.cachedBytesPerUs, 'options.cachedBytesPerUs', 1, 1e9),
    maxHoldUs: given.maxHoldUs === undefined ? DEFAULT_MAX_HOLD_US : validateInteger(given.maxHoldUs, 'options.maxHoldUs', 0, 1_000_000),
    maxHeld: given.maxHeld === undefined ? DEFAULT_MAX_HELD : validateInteger(given.maxHeld, 'options.maxHeld', 1, 1 << 20),
    ...ceilingOptions(given),
    completionBudgetUs:
      given.completionBudgetUs === undefined ? DEFAULT_COMPLETION_BUDGET_US : finite(given.completionBudgetUs, 'options.completionBudgetUs', 0, 1e7),
    cachedReadsOnLoop: given.cachedReadsOnLoop === undefined ? true : boolean(given.cachedReadsOnLoop, 'options.cachedReadsOnLoop'),
    loopReadBudgetUs: given.loopReadBudgetUs === undefined ? DEFAULT_LOOP_READ_BUDGET_US : finite(given.loopReadBudgetUs, 'options.loopReadBudgetUs', 0, 1e6),
    coldReads: given.coldReads === undefined ? DEFAULT_COLD_READ_POLICY : validateColdReadPolicy(given.coldReads),
    pollUs: given.pollUs === undefined ? DEFAULT_POLL_US : validateInteger(given.pollUs, 'options.pollUs', 0, 10_000),
    pollWhenInFlightAtMost:
      given.pollWhenInFlightAtMost === undefined
        ? defaultPollWhenInFlightAtMost()
        : validateInteger(given.pollWhenInFlightAtMost, 'options.pollWhenInFlightAtMost', 0, 1024),
    pollWhileHitShareAbove:
      given.pollWhileHitShareAbove === undefined
        ? DEFAULT_POLL_WHILE_HIT_SHARE_ABOVE
        : finite(given.pollWhileHitShareAbove, 'options.pollWhileHitShareAbove', 0, 1),
    pollLoopWhileWorkersHeld:
      given.pollLoopWhileWorkersHeld === undefined ? true : boolean(given.pollLoopWhileWorkersHeld, 'options.pollLoopWhileWorkersHeld'),
    workerScheduling: given.workerScheduling === undefined ? DEFAULT_WORKER_SCHEDULING : workerScheduling(given.workerScheduling),
    bufferedWritesPerFile:
      given.bufferedWritesPerFile === undefined ? DEFAULT_BUFFERED_WRITES_PER_FILE : validateInteger(given.bufferedWritesPerFile, 'options.bufferedWritesPerFile', 1, MAX_THREADS),
    workerCpus: given.workerCpus === undefined ? DEFAULT_WORKER_CPUS : workerCpus(given.workerCpus),
  };
}

/** The highest CPU number workerCpus accepts (the kernel's default cpu_set_t holds 1024). */
export const MAX_CPU = 1023;

function workerCpus(value: unknown): WorkerCpusOption {
  if (value === 'completions' || value === 'any') return value;
  if (typeof value === 'string') throw outOfRange('options.workerCpus', "'completions', 'any' or an array of CPU numbers", value);
  if (!Array.isArray(value)) throw invalidArgType('options.workerCpus', "'completions', 'any' or an array of CPU numbers", value);
  if (value.length === 0) throw outOfRange('options.workerCpus', 'a non-empty array', '[]');
  value.forEach((cpu, i) => validateInteger(cpu, `options.workerCpus[${i}]`, 0, MAX_CPU));
  return Object.freeze([...new Set(value as number[])].sort((a, b) => a - b));
}

function workerScheduling(value: unknown): WorkerScheduling {
  if (value === 'batch' || value === 'idle' || value === 'normal') return value;
  if (typeof value !== 'string') throw invalidArgType('options.workerScheduling', 'of type string', value);
  throw outOfRange('options.workerScheduling', "'normal', 'batch' or 'idle'", value);
}

function ceilingOptions(given: ThreadPoolOptions): Pick<ResolvedThreadPoolOptions, 'threadsPerInFlight' | 'maxThreadsPerInFlight' | 'riseWhenSleptShareBelow' | 'riseWhenLoopBusyBelow' | 'fallWhenSleptShareAbove' | 'keepRiseWhenFasterBy'> {
  const maxThreadsPerInFlight =
    given.maxThreadsPerInFlight === undefined ? DEFAULT_MAX_THREADS_PER_IN_FLIGHT : finite(given.maxThreadsPerInFlight, 'options.maxThreadsPerInFlight', 0.01, 1);
  const threadsPerInFlight =
    given.threadsPerInFlight === undefined
      ? Math.min(DEFAULT_THREADS_PER_IN_FLIGHT, maxThreadsPerInFlight)
      : finite(given.threadsPerInFlight, 'options.threadsPerInFlight', 0.01, 1);
  if (threadsPerInFlight > maxThreadsPerInFlight) {
    throw outOfRange('options.threadsPerInFlight', `<= options.maxThreadsPerInFlight (${maxThreadsPerInFlight})`, threadsPerInFlight);
  }
  return {
    threadsPerInFlight,
    maxThreadsPerInFlight,
    riseWhenSleptShareBelow:
      given.riseWhenSleptShareBelow === undefined ? DEFAULT_RISE_WHEN_SLEPT_SHARE_BELOW : finite(given.riseWhenSleptShareBelow, 'options.riseWhenSleptShareBelow', 0, 1),
    riseWhenLoopBusyBelow:
      given.riseWhenLoopBusyBelow === undefined ? DEFAULT_RISE_WHEN_LOOP_BUSY_BELOW : finite(given.riseWhenLoopBusyBelow, 'options.riseWhenLoopBusyBelow', 0, 1),
    fallWhenSleptShareAbove:
      given.fallWhenSleptShareAbove === undefined ? DEFAULT_FALL_WHEN_SLEPT_SHARE_ABOVE : finite(given.fallWhenSleptShareAbove, 'options.fallWhenSleptShareAbove', 0, 1),
    keepRiseWhenFasterBy:
      given.keepRiseWhenFasterBy === undefined ? DEFAULT_KEEP_RISE_WHEN_FASTER_BY : finite(given.keepRiseWhenFasterBy, 'options.keepRiseWhenFasterBy', -1, 1),
  };
}

function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}
