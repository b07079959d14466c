import type { AgentLogger, RequestLogEntry } from '../request-log.js';
import { RepeatLimiter } from './repeat-limiter.js';

type Fields = Readonly<Record<string, string | number | boolean>>;
type Level = 'event' | 'warn' | 'error';

export interface LimitedLogOptions {
  /** Lines per (level, message, code, peer) and interval written as they come. Default 5. */
  readonly burst?: number;
  /** Default 10 s. */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/**
 * The agent's log with repeats bounded: lines that a client can cause (connects,
 * refusals, protocol errors, failed requests) go through here, keyed by level, message,
 * code and the client's peer key (uid/CID, not the connection), so that neither one
 * connection nor a thousand from the same client can flood the log.
 */
export class LimitedLog {
  private readonly limiter: RepeatLimiter;
  private readonly samples = new Map<string, { level: Level | 'request'; message: string; code: string; peer: string }>();

  constructor(
    readonly log: AgentLogger,
    options: LimitedLogOptions = {},
  ) {
    this.limiter = new RepeatLimiter({
      burst: options.burst ?? 5,
      intervalMs: options.intervalMs ?? 10_000,
      ...(options.now ? { now: options.now } : {}),
      onSuppressed: (key, count) => {
        const sample = this.samples.get(key);
        this.samples.delete(key);
        const fields = { like: sample?.message ?? key, code: sample?.code ?? '', peer: sample?.peer ?? '', suppressed: count };
        const summary = `suppressed ${count} similar line${count === 1 ? '' : 's'}`;
        if (sample?.level === 'error') this.log.error(summary, fields);
        else if (sample?.level === 'event') this.log.event(summary, fields);
        else this.log.warn(summary, fields);
      },
    });
  }

  event(peer: string, message: string, fields: Fields = {}): void {
    if (this.admit('event', peer, message, codeOf(fields))) this.log.event(message, fields);
  }

  warn(peer: string, message: string, fields: Fields = {}): void {
    if (this.admit('warn', peer, message, codeOf(fields))) this.log.warn(message, fields);
  }

  error(peer: string, message: string, fields: Fields = {}): void {
    if (this.admit('error', peer, message, codeOf(fields))) this.log.error(message, fields);
  }

  /** Request lines: successful ones always (they are the request log), failures limited. */
  request(peer: string, entry: RequestLogEntry): void {
    if (entry.result === 'OK' || this.admit('request', peer, entry.method, entry.result)) this.log.request(entry);
  }

  /** Writes the pending summaries (on shutdown). */
  flush(): void {
    this.limiter.flushAll();
  }

  private admit(level: Level | 'request', peer: string, message: string, code: string): boolean {
    const key = `${level}\u0000${message}\u0000${code}\u0000${peer}`;
    if (this.limiter.admit(key)) return true;
    if (!this.samples.has(key) && this.samples.size < 1024) this.samples.set(key, { level, message, code, peer });
    return false;
  }
}

function codeOf(fields: Fields): string {
  const code = fields['code'];
  return typeof code === 'string' ? code : '';
}
