import { createFsFdIo, type FdIo } from '@vmlink/aio';

/** The FdIo the guard routes to, and how to release it when the backend closes. */
export interface Fallback {
  readonly io: FdIo;
  /** Set when the backend created the FdIo (and so owns its threads). */
  readonly release?: () => Promise<void>;
}

/** The default fallback: the node:fs FdIo (libuv's pool). */
export function defaultFallback(): Promise<Fallback> {
  return Promise.resolve({ io: createFsFdIo() });
}
