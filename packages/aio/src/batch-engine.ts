/**
 * The contract between BatchQueue and a native aio engine (the thread pool, io_submit).
 * The numbers are not written here: each engine exports its `layout` (defined once in
 * native/src/aio/batch_layout.h) and BatchQueue reads every offset and code from it.
 */

/** Field names of the request table (indices come from the engine's layout). */
export type RequestField =
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
export type CompletionField = 'slot' | 'result' | 'partial' | 'queueWaitUs' | 'serviceUs' | 'flags';

/** What an engine exports as `layout` (its class's static `layout`). */
export interface BatchLayout {
  /** Numbers per request in the request table. */
  readonly requestStride: number;
  readonly request: Readonly<Record<RequestField, number>>;
  /** Numbers per completion in the completion table. */
  readonly completionStride: number;
  readonly completion: Readonly<Record<CompletionField, number>>;
  /** Numbers per submit record: [requests passed, requests accepted, microseconds in the call]. */
  readonly recordStride: number;
  /** Per-request submit status; positive values are errnos that failed only that request. */
  readonly status: { readonly submitted: number; readonly deferred: number; readonly misaligned: number };
  /** Completion flag bits. */
  readonly flags: { readonly nowaitServed: number; readonly usedBlkdiscard: number };
  /** The engine's op codes by name. */
  readonly ops: Readonly<Record<string, number>>;
}

/** One request's buffers: one view, a list (vectored), or none (fsync, fallocate...). */
export type BatchBuffers = Uint8Array | readonly Uint8Array[] | undefined;

/** A native engine as BatchQueue drives it. */
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

/** Builds the engine around the completion table BatchQueue owns; `onComplete(count)` hears each batch. */
export type BatchEngineFactory<E extends BatchEngine> = (completions: Float64Array, onComplete: (count: number) => void) => E;
