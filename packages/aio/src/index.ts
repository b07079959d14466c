export type {
  AioBackend,
  AioCapabilities,
  AioFile,
  AioRequest,
  AioResult,
  AioStats,
  Alignment,
  BackendFactory,
  BackendName,
  BackendSelection,
  BackendOptions,
  CacheFirstRead,
  FallocateMode,
  FdIo,
  HistogramSummary,
  OpenFlags,
  OpOptions,
  Position,
  SpaceRequest,
  ThreadStats,
  PollingStats,
} from './types.js';
export { createBackend } from './create-backend.js';
export { createFsBackend, createFsFdIo } from './fs-backend.js';
export { FsFdIo } from './fs-io.js';
export { AioBackendBase } from './backend-base.js';
export { AioFileBase, type AioFileBaseInit, type Settle, type SyncOp, type TransferOp } from './file-base.js';
export { submitRequests } from './submit.js';
export { FdBackend, type FdBackendInit } from './fd-backend.js';
export { FdFile, type FdFileInit } from './fd-file.js';
export { allocAligned, isAligned, alignmentOf, misalignment, hasDirectFlag, O_DIRECT, NO_ALIGNMENT } from './align.js';
export {
  FALLOCATE_MODES,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  fallocateModeBits,
  runSpaceRequest,
  validateFallocateMode,
  validateLength,
  validateSpaceRequest,
} from './space.js';
export { StatsRecorder } from './stats.js';
export { LogHistogram } from './histogram.js';
export { closedError, misalignedError, withPath, backendUnavailable, type IoError } from './errors.js';
export {
  MAX_BUFFERS,
  MAX_POSITION,
  normalizePosition,
  positionToBigInt,
  skipBytes,
  totalLength,
  validateBuffer,
  validateBuffers,
  validateOpenFlags,
  validateOpOptions,
  validatePosition,
} from './validate.js';
export { watchAbort } from './abort-watch.js';
export { ColdReadMeter, DEFAULT_COLD_READ_POLICY, validateColdReadPolicy, type ColdReadPolicy } from './cold-reads.js';
export { BatchQueue, MISALIGNED, WITHDRAWN, type BatchCompletion, type BatchQueueOptions, type BatchRequest } from './batch-queue.js';
export type { BatchBuffers, BatchEngine, BatchEngineFactory, BatchLayout, CompletionField, RequestField } from './batch-engine.js';
export { continuesRun, slowSubmitFlags, whenToSubmit, type RunEnd, type SubmitPolicy, type SubmitWhen } from './batch-policy.js';
