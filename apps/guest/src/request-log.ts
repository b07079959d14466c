/** One line per request: method, peer, duration, result code. */
export interface RequestLogEntry {
  readonly method: string;
  readonly peer: string;
  readonly durationMs: number;
  /** 'OK', or the error code the client received. */
  readonly result: string;
  /** Short extra facts (bytes moved, exit code). */
  readonly detail?: Readonly<Record<string, string | number | boolean>>;
}

export interface AgentLogger {
  request(entry: RequestLogEntry): void;
  event(message: string, fields?: Readonly<Record<string, string | number | boolean>>): void;
  /** Something a client did wrong (bad frames, refused peers): silenced by --quiet. */
  warn(message: string, fields?: Readonly<Record<string, string | number | boolean>>): void;
  error(message: string, fields?: Readonly<Record<string, string | number | boolean>>): void;
}

export interface LoggerOptions {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly write?: (line: string) => void;
  readonly now?: () => Date;
}

export function createLogger(options: LoggerOptions): AgentLogger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const emit = (kind: string, message: string, fields: Readonly<Record<string, unknown>>): void => {
    const time = now().toISOString();
    if (options.json) {
      write(JSON.stringify({ time, kind, msg: message, ...fields }));
    } else {
      const rest = Object.entries(fields)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(' ');
      write(`${time} ${kind} ${message}${rest ? ` ${rest}` : ''}`);
    }
  };
  return {
    request(entry) {
      if (options.quiet && entry.result === 'OK') return;
      emit('req', entry.method, {
        peer: entry.peer,
        ms: Math.round(entry.durationMs * 10) / 10,
        result: entry.result,
        ...entry.detail,
      });
    },
    event(message, fields = {}) {
      if (!options.quiet) emit('info', message, fields);
    },
    warn(message, fields = {}) {
      if (!options.quiet) emit('warn', message, fields);
    },
    error(message, fields = {}) {
      emit('error', message, fields);
    },
  };
}

function formatValue(value: unknown): string {
  const text = String(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}
