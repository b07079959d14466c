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

export function whenToSubmit(pending: number, pendingDirect: number, inKernel: number, policy: SubmitPolicy): SubmitWhen {
  if (pending === 0) return 'tick';
  if (pendingDirect === pending && policy.directBatch > 0 && inKernel >= policy.directBatch) {
    // The device is busy: a fuller call beats an earlier one (a completion is coming).
    return pending >= policy.directBatch ? 'now' : 'completion';
  }
  if (pending >= policy.submitThreshold || pendingDirect >= policy.directSubmitThreshold) return 'now';
  return 'tick';
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
