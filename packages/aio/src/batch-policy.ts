/**
 * When queued requests go to the engine (io_submit, or the thread pool's workers). Pure
 * logic (no I/O, no clock): BatchQueue asks it after every enqueue and at the end of
 * every tick.
 *
 * Fewer, fuller io_submit calls are what a batching engine lives on (fio libaio with
 * `--iodepth_batch_submit=16` runs ~3x its one-per-call rate here), but a device left idle
 * while JS waits for a fuller batch loses more than the calls save. So: requests go at
 * the end of the tick they were made in, sooner when enough are queued, and O_DIRECT
 * requests wait for the next completion while the device already has `directBatch`
 * requests to work on (like fio's submit batching: the device never runs dry, and each
 * call carries a batch).
 */
export interface SubmitPolicy {
  /** Queued requests (any kind) that go at once instead of at the end of the tick (Infinity: never early). */
  readonly submitThreshold: number;
  /** Queued O_DIRECT requests that go at once while the device is not busy. */
  readonly directSubmitThreshold: number;
  /**
   * While at least this many requests are in the kernel, queued O_DIRECT requests wait
   * for a completion until this many are queued (0 = never wait).
   */
  readonly directBatch: number;
}

/** 'now': submit before returning; 'tick': at the end of the tick; 'completion': hold until a completion arrives. */
export type SubmitWhen = 'now' | 'tick' | 'completion';

/**
 * `directRuns`: how many runs the staged O_DIRECT requests make (see continuesRun); a run
 * of contiguous requests counts once against the thresholds, because the block layer
 * merges it into one device request when it goes in one call (its plug). Splitting it to
 * start the device sooner would only make more, smaller device requests: 128 KiB
 * sequential reads, 16 in flight, averaged 670 KiB per device request in groups of 4 and
 * 8, against fio's 1.9 MiB in its batches of 16, and made 0.7-0.85x of fio's MB/s. Equal
 * to `pendingDirect` when no request continues another (random I/O: nothing changes).
 */
export function whenToSubmit(pending: number, pendingDirect: number, inKernel: number, policy: SubmitPolicy, directRuns = pendingDirect): SubmitWhen {
  if (pending === 0) return 'tick';
  if (pendingDirect === pending && policy.directBatch > 0 && inKernel >= policy.directBatch) {
    // The device is busy: a fuller call beats an earlier one (a completion is coming).
    return directRuns >= policy.directBatch ? 'now' : 'completion';
  }
  const units = pending - pendingDirect + directRuns;
  if (units >= policy.submitThreshold || directRuns >= policy.directSubmitThreshold) return 'now';
  return 'tick';
}

/** Where the last staged O_DIRECT request ends: the next one continues its run if it starts there. */
export interface RunEnd {
  readonly fd: number;
  readonly op: number;
  readonly end: number;
}

/**
 * The run end after staging an O_DIRECT request (`op` on `fd` at `position`, `bytes`
 * long), and whether it continued the run `last` ended: same fd, same op, starting where
 * the last one stopped. Positions past 2^53 (bigint) start a new run.
 */
export function continuesRun(last: RunEnd | undefined, fd: number, op: number, position: number | bigint, bytes: number): { continues: boolean; end: RunEnd | undefined } {
  if (typeof position !== 'number') return { continues: false, end: undefined };
  const continues = last !== undefined && last.fd === fd && last.op === op && last.end === position;
  return { continues, end: { fd, op, end: position + bytes } };
}

/**
 * Which requests of a hand-over rode in a slow call. Pure logic over the engine's submit
 * records ([requests passed, requests accepted, microseconds] per call): the engine only
 * reports timings; calling a call "slow" (it did I/O inside: a buffered NOWAIT read that
 * started readahead and waited for it) is decided here, by `usPerRequest`.
 */
export function slowSubmitFlags(records: ArrayLike<number>, recordCount: number, stride: number, usPerRequest: number): boolean[] {
  const flags: boolean[] = [];
  for (let r = 0; r < recordCount; r++) {
    const accepted = records[r * stride + 1] as number;
    const micros = records[r * stride + 2] as number;
    const slow = micros > accepted * usPerRequest;
    // The accepted requests of the records are the submitted requests, in order.
    for (let i = 0; i < accepted; i++) flags.push(slow);
  }
  return flags;
}
