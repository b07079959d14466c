export type {
  AioBackend,
  AioCapabilities,
  AioFile,
  AioRequest,
  AioResult,
  AioStats,
  Alignment,
  BackendName,
  HistogramSummary,
  OpenFlags,
  OpOptions,
  Position,
} from './types.js';
