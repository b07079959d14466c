export { createThreadPoolBackend, createThreadPoolIo, createBackend } from './backend.js';
export { ThreadPoolIo } from './pool-io.js';
export {
  defaultThreadCount,
  resolveOptions,
  MAX_THREADS,
  DEFAULT_MAX_THREADS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_GROW_WHEN_SLOW_SHARE,
  DEFAULT_CACHED_BASE_US,
  DEFAULT_CACHED_BYTES_PER_US,
  DEFAULT_MAX_HOLD_US,
  DEFAULT_MAX_HELD,
  DEFAULT_COMPLETION_BUDGET_US,
  DEFAULT_THREADS_PER_IN_FLIGHT,
  DEFAULT_MAX_THREADS_PER_IN_FLIGHT,
  DEFAULT_RISE_WHEN_SLEPT_SHARE_BELOW,
  DEFAULT_RISE_WHEN_LOOP_BUSY_BELOW,
  DEFAULT_FALL_WHEN_SLEPT_SHARE_ABOVE,
  DEFAULT_POLL_US,
  DEFAULT_POLL_WHILE_HIT_SHARE_ABOVE,
  DEFAULT_WORKER_SCHEDULING,
  DEFAULT_BUFFERED_WRITES_PER_FILE,
  DEFAULT_KEEP_RISE_WHEN_FASTER_BY,
  DEFAULT_WORKER_CPUS,
  MAX_CPU,
  defaultPollWhenInFlightAtMost,
  type WorkerCpusOption,
  type ThreadPoolOptions,
  type ResolvedThreadPoolOptions,
  type WorkerScheduling,
} from './options.js';
export {
  servedFromCache,
  SlowShare,
  withinCopyTime,
  workersToAdd,
  WorkerCeiling,
  CEILING_STEP,
  CEILING_WINDOW,
  CEILING_MAX_HOLD_WINDOWS,
  type CeilingPolicy,
  type CopyTiming,
  type PoolLoad,
} from './policy.js';
export { busyShare, Polling, POLL_WINDOW, POLL_MIN_SAMPLES, POLL_BACKOFF_WINDOWS, type PollingPolicy, type PollCounts, type PollSetting } from './polling.js';
export { completionCpus, leavesACpuOut, workerCpuSet, WorkerCpus, DEFAULT_COMPLETION_CPU_POLICY, type CompletionCpuPolicy } from './worker-cpus.js';
export { allowedCpus, blockDeviceOf, deviceInterrupts, parseCpuList, type DeviceInterrupt, type DeviceStat } from './device-interrupts.js';
