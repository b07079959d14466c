// A tiny encoder/decoder of the batch contract (src/aio/batch_layout.h) for the native
// tests: the same field indices @vmlink/aio's BatchQueue writes, read from the engine's
// exported layout (importing @vmlink/aio here would make native depend on its user).
import type { BatchBuffers, BatchCompletionField, BatchEngine, BatchLayout } from '../../index.cjs';

const TWO_32 = 2 ** 32;

/** One request as a test writes it; every number not given is 0. */
export interface TestRequest {
  readonly slot: number;
  readonly op: number;
  readonly fd?: number;
  /** Offset (read, write, fallocate, discard) or size (truncate); may exceed 2^32. */
  readonly position?: number;
  /** Bytes, for fallocate and discard; may exceed 2^32. */
  readonly length?: number;
  /** fallocate mode bits. */
  readonly mode?: number;
  readonly rwFlags?: number;
  /** O_DIRECT alignment the engine checks before submission (memory, offset, length). */
  readonly align?: { readonly memory: number; readonly offset: number; readonly length: number };
  readonly buffers?: BatchBuffers;
}

/** A decoded completion. */
export type TestCompletion = Record<BatchCompletionField, number>;

/** What one submit() call wrote back. */
export interface SubmitOutcome {
  /** submit()'s return value: the number of records written. */
  readonly recordCount: number;
  /** One status per request. */
  readonly status: number[];
  /** [requests passed, requests accepted, microseconds] per record. */
  readonly records: number[][];
}

/** Writes `request` as request `index` of `table`, 64-bit numbers split low/high. */
export function encodeRequest(layout: BatchLayout, table: Float64Array, index: number, request: TestRequest): void {
  const base = index * layout.requestStride;
  const field = layout.request;
  const position = request.position ?? 0;
  const length = request.length ?? 0;
  table.fill(0, base, base + layout.requestStride);
  table[base + field.slot] = request.slot;
  table[base + field.op] = request.op;
  table[base + field.fd] = request.fd ?? 0;
  table[base + field.positionLow] = position % TWO_32;
  table[base + field.positionHigh] = Math.floor(position / TWO_32);
  table[base + field.lengthLow] = length % TWO_32;
  table[base + field.lengthHigh] = Math.floor(length / TWO_32);
  table[base + field.mode] = request.mode ?? 0;
  table[base + field.rwFlags] = request.rwFlags ?? 0;
  table[base + field.alignMemory] = request.align?.memory ?? 0;
  table[base + field.alignOffset] = request.align?.offset ?? 0;
  table[base + field.alignLength] = request.align?.length ?? 0;
}

/** Tables sized for `requests` (records: one per request plus one, the most io_submit writes). */
export function encodeBatch(layout: BatchLayout, requests: readonly TestRequest[]) {
  const table = new Float64Array(Math.max(1, requests.length) * layout.requestStride);
  requests.forEach((request, index) => encodeRequest(layout, table, index, request));
  return {
    requests: table,
    count: requests.length,
    buffers: requests.map((request) => request.buffers),
    status: new Int32Array(Math.max(1, requests.length)).fill(0x7fffffff),
    records: new Float64Array((requests.length + 1) * layout.recordStride).fill(-1),
  };
}

/** Encodes `requests`, hands them to `engine` in one submit() call and reads back what it wrote. */
export function submitBatch(engine: BatchEngine, layout: BatchLayout, requests: readonly TestRequest[]): SubmitOutcome {
  const batch = encodeBatch(layout, requests);
  const recordCount = engine.submit(batch.requests, batch.count, batch.buffers, batch.status, batch.records);
  const records: number[][] = [];
  for (let i = 0; i < recordCount; i++) records.push(Array.from(batch.records.subarray(i * layout.recordStride, (i + 1) * layout.recordStride)));
  return { recordCount, status: Array.from(batch.status.subarray(0, requests.length)), records };
}

/** Completion `index` of a completion table. */
export function decodeCompletion(layout: BatchLayout, table: Float64Array, index: number): TestCompletion {
  const base = index * layout.completionStride;
  const field = layout.completion;
  return {
    slot: table[base + field.slot]!,
    result: table[base + field.result]!,
    partial: table[base + field.partial]!,
    queueWaitUs: table[base + field.queueWaitUs]!,
    serviceUs: table[base + field.serviceUs]!,
    flags: table[base + field.flags]!,
  };
}

/**
 * A completion table of `capacity` completions and the onComplete that decodes it:
 * `next(n)` resolves with the next n completions; `callbacks` holds each call's count.
 */
export function completionCollector(layout: BatchLayout, capacity: number) {
  const completions = new Float64Array(capacity * layout.completionStride);
  const received: TestCompletion[] = [];
  const callbacks: number[] = [];
  let waiter: { n: number; resolve: (done: TestCompletion[]) => void } | undefined;
  const onComplete = (count: number): void => {
    callbacks.push(count);
    for (let i = 0; i < count; i++) received.push(decodeCompletion(layout, completions, i));
    if (waiter !== undefined && received.length >= waiter.n) {
      const { n, resolve } = waiter;
      waiter = undefined;
      resolve(received.splice(0, n));
    }
  };
  const next = (n: number): Promise<TestCompletion[]> =>
    received.length >= n ? Promise.resolve(received.splice(0, n)) : new Promise((resolve) => (waiter = { n, resolve }));
  /** Completions received and not yet taken by next(). */
  const pending = (): readonly TestCompletion[] => received;
  return { completions, onComplete, next, callbacks, pending };
}

/** The completions by slot (each slot at most once). */
export function bySlot(done: readonly TestCompletion[]): Map<number, TestCompletion> {
  return new Map(done.map((completion) => [completion.slot, completion]));
}
