// Types of the one request/completion contract every native aio engine (thread pool,
// io_submit) shares. The numbers live in src/aio/batch_layout.h; each engine exports
// them as its class's static `layout`, and @vmlink/aio's BatchQueue reads them from there.

/** Field names of the request table (indices come from the engine's layout). */
export type BatchRequestField =
  | 'slot'
  | 'op'
  | 'fd'
  | 'positionLow'
  | 'positionHigh'
  | 'lengthLow'
  | 'lengthHigh'
  | 'mode'
  | 'rwFlags'
  | 'alignMemory'
  | 'alignOffset'
  | 'alignLength';

/** Field names of the completion table. */
export type BatchCompletionField = 'slot' | 'result' | 'partial' | 'queueWaitUs' | 'serviceUs' | 'flags';

/** What an engine exports as `layout` (its class's static `layout`). */
export interface BatchLayout {
  /** Numbers per request in the request table. */
  readonly requestStride: number;
  readonly request: Readonly<Record<BatchRequestField, number>>;
  /** Numbers per completion in the completion table. */
  readonly completionStride: number;
  readonly completion: Readonly<Record<BatchCompletionField, number>>;
  /** Numbers per submit record: [requests passed, requests accepted, microseconds in the call]. */
  readonly recordStride: number;
  /** Per-request submit status; positive values are errnos that failed only that request. */
  readonly status: { readonly submitted: number; readonly deferred: number; readonly misaligned: number };
  /** Completion flag bits. */
  readonly flags: { readonly nowaitServed: number; readonly usedBlkdiscard: number; readonly servedHere: number; readonly missedHere: number; readonly directFd: number; readonly workerSlept: number };
  /** The engine's op codes by name. */
  readonly ops: Readonly<Record<string, number>>;
}

/** One request's buffers: one view, a list (vectored), or none (fsync, fallocate...). */
export type BatchBuffers = Uint8Array | readonly Uint8Array[] | undefined;

/** A native engine as a batch queue drives it. */
export interface BatchEngine {
  /**
   * Takes requests 0..count-1 of `requests` (`buffers[i]` belongs to request i), writes a
   * status per request and a record per hand-over call, and returns the record count.
   * The caller keeps every buffer reachable until its completion.
   */
  submit(requests: Float64Array, count: number, buffers: readonly BatchBuffers[], status: Int32Array, records: Float64Array): number;
  /** Withdraws requests no one has started: per slot, 1 when withdrawn (no completion follows). */
  cancel?(slots: Uint32Array): Uint8Array;
}
