export { createIoSubmitBackend, IoSubmitBackend } from './backend.js';
export type { BufferedReads, IoSubmitBackendOptions } from './options.js';
export type { WriteNowaitMode } from './write-nowait.js';
export type { ColdReadPolicy } from '@vmlink/aio';
export type { FileFacts, RouteReason } from './guard.js';
export { IoSubmitFile } from './file.js';

import type { BackendFactory } from '@vmlink/aio';
import { createIoSubmitBackend } from './backend.js';

/** The factory @vmlink/aio's createBackend('iosubmit') calls. */
export const createBackend: BackendFactory = (options) => createIoSubmitBackend(options);
