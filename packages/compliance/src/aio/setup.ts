import type { AioBackend, BackendOptions } from '@vmlink/aio';

/**
 * How the suite gets a backend (libp2p-style): `setup` makes a fresh one for a group of
 * tests, `teardown` releases it (default: `backend.close()`).
 */
export interface AioTestSetup {
  setup(): Promise<AioBackend>;
  teardown?(backend: AioBackend): Promise<void>;
  /**
   * How a child process builds the same backend, for the "process exits on its own"
   * test: a module specifier resolvable from the current directory, the factory it
   * exports, and JSON-serialisable options. Without it that test is skipped, visibly.
   */
  child?: { readonly module: string; readonly factory: string; readonly options?: BackendOptions };
  /** How many requests the backend keeps in flight at most (queue depth); default 32. */
  maxInFlight?: number;
  /** Where test files are made; default os.tmpdir(). O_DIRECT tests skip if it lacks O_DIRECT. */
  dir?: string;
  /**
   * Multiplies the suite's liveness limits (the heavy tests' timeouts, how long a child
   * process may take to exit by itself); default 1. For machines several times slower
   * than a host core, such as an emulated guest: every assertion stays the same.
   */
  timeoutScale?: number;
}

/** What each group of tests receives. */
export interface AioSuiteContext {
  /** The backend of the current group (made in beforeAll). */
  backend(): AioBackend;
  /** The fs reference backend (for differential tests). */
  reference(): AioBackend;
  /** A fresh path in the suite's temporary directory. */
  path(name: string): string;
  /** Why O_DIRECT cannot be tested here, or undefined when it can. */
  directUnsupported(): string | undefined;
  readonly setup: AioTestSetup;
}
