/**
 * Bounds repeated log lines: per key (message + code + peer), the first `burst` lines of
 * each interval pass; the rest are counted and reported as one summary when the interval
 * ends. A flood of 100,000 bad frames becomes a handful of lines.
 */
export interface RepeatLimiterOptions {
  /** Lines per key and interval that are written as they come. */
  readonly burst: number;
  readonly intervalMs: number;
  /** Called once per key and interval in which lines were held back. */
  readonly onSuppressed: (key: string, count: number) => void;
  /** Keys tracked at once; beyond it every new key shares one overflow key. */
  readonly maxKeys?: number;
  readonly now?: () => number;
}

interface KeyWindow {
  start: number;
  passed: number;
  suppressed: number;
  timer: NodeJS.Timeout | undefined;
}

export const OVERFLOW_KEY = '(other)';

export class RepeatLimiter {
  private readonly windows = new Map<string, KeyWindow>();
  private readonly now: () => number;
  private readonly maxKeys: number;

  constructor(private readonly options: RepeatLimiterOptions) {
    this.now = options.now ?? (() => performance.now());
    this.maxKeys = options.maxKeys ?? 1024;
  }

  /** True when a line under `key` may be written now. */
  admit(key: string): boolean {
    const now = this.now();
    let window = this.windows.get(key);
    if (window === undefined && this.windows.size >= this.maxKeys) this.sweep(now);
    if (window === undefined && this.windows.size >= this.maxKeys) {
      key = OVERFLOW_KEY;
      window = this.windows.get(key);
    }
    if (window !== undefined && now - window.start >= this.options.intervalMs) {
      this.flush(key, window);
      window = undefined;
    }
    if (window === undefined) {
      window = { start: now, passed: 0, suppressed: 0, timer: undefined };
      this.windows.set(key, window);
    }
    if (window.passed < this.options.burst) {
      window.passed += 1;
      return true;
    }
    window.suppressed += 1;
    if (window.timer === undefined) {
      const entry = window;
      // The summary comes at the end of the interval even if no line follows.
      entry.timer = setTimeout(() => this.flush(key, entry), Math.max(0, entry.start + this.options.intervalMs - now));
      entry.timer.unref();
    }
    return false;
  }

  /** Reports what is held back now (shutdown). */
  flushAll(): void {
    for (const [key, window] of [...this.windows]) this.flush(key, window);
  }

  /** Keys being tracked (for tests of the bound). */
  get trackedKeys(): number {
    return this.windows.size;
  }

  /** Forgets keys whose interval is over (their summaries, if any, are written). */
  private sweep(now: number): void {
    for (const [key, window] of [...this.windows]) {
      if (now - window.start >= this.options.intervalMs) this.flush(key, window);
    }
  }

  private flush(key: string, window: KeyWindow): void {
    if (window.timer !== undefined) clearTimeout(window.timer);
    window.timer = undefined;
    if (this.windows.get(key) === window) this.windows.delete(key);
    if (window.suppressed > 0) this.options.onSuppressed(key, window.suppressed);
  }
}
