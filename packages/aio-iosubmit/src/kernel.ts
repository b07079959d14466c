import { BatchQueue, type StatsRecorder, type SubmitPolicy } from '@vmlink/aio';
import { ioSubmitEngineClass, type IoSubmitEngine } from './native.js';

/** The io_submit context behind the backend's one BatchQueue. */
export type KernelQueue = BatchQueue<IoSubmitEngine>;

export interface KernelQueueOptions extends SubmitPolicy {
  /** Requests in the kernel at once (the io_setup size). */
  readonly maxInFlight: number;
  /** Time per request in one io_submit call above which the call did I/O (see BatchCompletion.slowSubmit). */
  readonly slowSubmitUsPerIocb: number;
  /** Time (us) one loop turn spends settling completions before the rest waits for the next turn. */
  readonly completionBudgetUs: number;
}

/**
 * One kernel AIO context (io_setup(maxInFlight)) driven by @vmlink/aio's BatchQueue: at
 * most maxInFlight requests in the kernel (one completion-table row each), the rest
 * queued in JS; the addon splits each hand-over into io_submit calls of up to 32.
 */
export function createKernelQueue(options: KernelQueueOptions, recorder: StatsRecorder): KernelQueue {
  const Context = ioSubmitEngineClass();
  return new BatchQueue({
    layout: Context.layout,
    engine: (completions, onComplete) => new Context({ maxInFlight: options.maxInFlight, completions }, onComplete),
    capacity: options.maxInFlight,
    completionTableSize: options.maxInFlight,
    policy: { submitThreshold: options.submitThreshold, directSubmitThreshold: options.directSubmitThreshold, directBatch: options.directBatch },
    slowSubmitUsPerRequest: options.slowSubmitUsPerIocb,
    completionBudgetUs: options.completionBudgetUs,
    recorder,
  });
}
