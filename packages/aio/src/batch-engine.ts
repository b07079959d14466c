/**
 * The contract between BatchQueue and a native aio engine (the thread pool, io_submit).
 * The numbers are not written here: each engine exports its `layout` (defined once in
 * native/src/aio/batch_layout.h) and BatchQueue reads every offset and code from it.
 */

// The contract's types are defined once, next to the engines that implement it.
export type {
  BatchBuffers,
  BatchCompletionField as CompletionField,
  BatchEngine,
  BatchLayout,
  BatchRequestField as RequestField,
} from '@vmlink/native';
import type { BatchEngine } from '@vmlink/native';

/** Builds the engine around the completion table BatchQueue owns; `onComplete(count)` hears each batch. */
export type BatchEngineFactory<E extends BatchEngine> = (completions: Float64Array, onComplete: (count: number) => void) => E;
