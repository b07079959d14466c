import { createBackend, type AioBackend, type AioFile } from '@vmlink/aio';
import type { AioChoice } from './options.js';

/** The part of an @vmlink/aio backend the file methods use (narrow, so tests can see what matters). */
export type FileBackend = Pick<AioBackend, 'name' | 'open' | 'close'>;
export type BackendFile = Pick<AioFile, 'fd' | 'read' | 'write' | 'fsync' | 'close'>;

/**
 * The backend chosen with `--aio`. createBackend loads the plugin packages itself
 * (dynamic import): 'auto' is the thread pool where the addon is built, else `fs`.
 */
export function openFileBackend(choice: AioChoice): Promise<AioBackend> {
  return createBackend(choice);
}
