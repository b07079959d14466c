import { invalidArgType, outOfRange, validateInteger, validateObject } from '@vmlink/errors';
import { validateColdReadPolicy, type ColdReadPolicy, type FdIo } from '@vmlink/aio';

/**
 * Options of createIoSubmitBackend. Every number the backend decides by is one of these,
 * with its default measured on the machines this was built on (2 cores, ext4 on a virtual
 * disk, kernel 6.18); tune them for yours.
 */
export interface IoSubmitBackendOptions {
  /**
   * Turn the blocking guard off: every request goes to io_submit (no RWF_NOWAIT, no
   * fallback), so blocking shows in `stats().submitTimeUs`. Misaligned O_DIRECT requests
   * then fail with EINVAL naming the alignment. Default false.
   */
  readonly strict?: boolean;
  /**
   * Where the guard sends requests that would block io_submit. Default: the
   * @vmlink/aio-threadpool FdIo when it is installed, else the node:fs one.
   */
  readonly fallback?: FdIo;
  /** Requests in the kernel at once (the io_setup size). Default 128. */
  readonly maxInFlight?: number;
  /**
   * Requests queued within a tick that trigger a submit at once rather than at the end of
   * the tick: smaller starts the device sooner, larger makes fewer io_submit calls.
   * Default 8.
   */
  readonly submitThreshold?: number;
  /**
   * The same for requests on O_DIRECT files only, while the device is not busy (see
   * directBatch): the device serves those, so starting it sooner beats fewer calls, while
   * page-cache hits are copies inside io_submit where fewer calls win. Default 4.
   */
  readonly directSubmitThreshold?: number;
  /**
   * While at least this many requests are in the kernel, queued O_DIRECT requests wait for
   * the next completion until this many are queued, then go in one io_submit call (fio's
   * `--iodepth_batch_submit`: the device still has work, and one call per batch costs far
   * less than one per request). 0 turns the wait off. Default 8 (DEFAULT_DIRECT_BATCH).
   */
  readonly directBatch?: number;
  /**
   * Reads of files opened without O_DIRECT. 'nowait' sends them to io_submit with
   * RWF_NOWAIT, so page-cache hits are served in the batch and misses (EAGAIN) go to the
   * fallback; 'adaptive' (default) does the same while the file's reads hit the cache, and
   * sends them straight to the fallback while they keep missing it (a NOWAIT miss still
   * starts readahead inside io_submit, which can hold the event loop for milliseconds);
   * 'fallback' always sends them to the fallback.
   */
  readonly bufferedReads?: BufferedReads;
  /**
   * The 'adaptive' cold-read meter's numbers (see ColdReadPolicy); missing fields keep
   * their defaults: window 32, missesToCool 4, missesToWarm 2, firstPause 256, maxPause 4096.
   */
  readonly coldReads?: Partial<ColdReadPolicy>;
  /**
   * Microseconds per request in one io_submit call above which the call is taken to have
   * done I/O (a cached 4 KiB copy takes ~2 us here; a read that waited for the disk, tens
   * of us or more): such a NOWAIT read counts as a page-cache miss. Default 20.
   */
  readonly slowSubmitUsPerIocb?: number;
  /**
   * Microseconds one event-loop turn spends settling completions (and what their
   * continuations run right away) before the rest waits for the next turn, so that timers
   * and other I/O are not held back by a flood of completions. Default 500.
   */
  readonly completionBudgetUs?: number;
  /**
   * NOWAIT writes that say EAGAIN on a file system, with no success in between, before
   * the backend stops trying write NOWAIT there (6.x ext4 says EAGAIN to every one).
   * Default 4.
   */
  readonly writeNowaitProbeWrites?: number;
}

/** How the guard treats reads of files opened without O_DIRECT (see IoSubmitBackendOptions). */
export type BufferedReads = 'adaptive' | 'nowait' | 'fallback';
const BUFFERED_READS: readonly BufferedReads[] = ['adaptive', 'nowait', 'fallback'];

export interface ResolvedOptions {
  readonly strict: boolean;
  readonly fallback: FdIo | undefined;
  readonly maxInFlight: number;
  readonly submitThreshold: number;
  readonly directSubmitThreshold: number;
  readonly directBatch: number;
  readonly bufferedReads: BufferedReads;
  readonly coldReads: ColdReadPolicy;
  readonly slowSubmitUsPerIocb: number;
  readonly completionBudgetUs: number;
  readonly writeNowaitProbeWrites: number;
}

export const DEFAULT_MAX_IN_FLIGHT = 128;
export const DEFAULT_SUBMIT_THRESHOLD = 8;
export const DEFAULT_DIRECT_SUBMIT_THRESHOLD = 4;
/**
 * 4 KiB O_DIRECT random reads, 32 in flight, quiet 2-core machine, interleaved rounds
 * against fio libaio batched (submit 16, reap <= 16): 4 0.69x, 6 0.83x, 8 0.91-0.94x,
 * 10 0.88x, 12 0.82x, 16 0.79-0.81x, 24 0.81x, 0 (never wait) 0.67x. 128 KiB sequential
 * at 16 in flight is bandwidth-bound: 4, 8 and 16 within noise (0.88-0.99x).
 */
export const DEFAULT_DIRECT_BATCH = 8;
export const DEFAULT_SLOW_SUBMIT_US_PER_IOCB = 20;
export const DEFAULT_COMPLETION_BUDGET_US = 500;
export const DEFAULT_WRITE_NOWAIT_PROBE_WRITES = 4;
const MAX_SUBMIT_THRESHOLD = 1024;
const MAX_MICROSECONDS = 1_000_000;
const MAX_COUNT = 1 << 24;

const FD_IO_METHODS = ['readv', 'writev', 'fsync', 'fdatasync'] as const;

/** Checks the options and fills in defaults; every bad value is a coded error naming it. */
export function validateOptions(options: unknown, maxInFlightLimit: number): Omit<ResolvedOptions, 'fallback'> & { fallback?: FdIo } {
  validateObject(options, 'options');
  const {
    strict = false,
    fallback,
    maxInFlight = DEFAULT_MAX_IN_FLIGHT,
    submitThreshold = DEFAULT_SUBMIT_THRESHOLD,
    directSubmitThreshold = DEFAULT_DIRECT_SUBMIT_THRESHOLD,
    directBatch = DEFAULT_DIRECT_BATCH,
    bufferedReads = 'adaptive',
    coldReads = {},
    slowSubmitUsPerIocb = DEFAULT_SLOW_SUBMIT_US_PER_IOCB,
    completionBudgetUs = DEFAULT_COMPLETION_BUDGET_US,
    writeNowaitProbeWrites = DEFAULT_WRITE_NOWAIT_PROBE_WRITES,
  } = options as IoSubmitBackendOptions;
  if (typeof strict !== 'boolean') throw invalidArgType('options.strict', 'of type boolean', strict);
  validateInteger(maxInFlight, 'options.maxInFlight', 1, maxInFlightLimit);
  validateInteger(submitThreshold, 'options.submitThreshold', 1, MAX_SUBMIT_THRESHOLD);
  validateInteger(directSubmitThreshold, 'options.directSubmitThreshold', 1, MAX_SUBMIT_THRESHOLD);
  validateInteger(directBatch, 'options.directBatch', 0, MAX_SUBMIT_THRESHOLD);
  if (!BUFFERED_READS.includes(bufferedReads)) {
    throw outOfRange('options.bufferedReads', "'adaptive', 'nowait' or 'fallback'", bufferedReads);
  }
  validateInteger(slowSubmitUsPerIocb, 'options.slowSubmitUsPerIocb', 1, MAX_MICROSECONDS);
  validateInteger(completionBudgetUs, 'options.completionBudgetUs', 1, MAX_MICROSECONDS);
  validateInteger(writeNowaitProbeWrites, 'options.writeNowaitProbeWrites', 1, MAX_COUNT);
  if (fallback !== undefined) {
    const candidate = fallback as unknown as Record<string, unknown>;
    if (candidate === null || typeof candidate !== 'object' || FD_IO_METHODS.some((name) => typeof candidate[name] !== 'function')) {
      throw invalidArgType('options.fallback', 'an FdIo (readv, writev, fsync, fdatasync)', fallback);
    }
  }
  return {
    strict,
    maxInFlight,
    submitThreshold,
    directSubmitThreshold,
    directBatch,
    bufferedReads,
    coldReads: validateColdReadPolicy(coldReads),
    slowSubmitUsPerIocb,
    completionBudgetUs,
    writeNowaitProbeWrites,
    ...(fallback === undefined ? {} : { fallback }),
  };
}
