import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import { parseAllowExec } from './policy/exec-policy.js';

export const AIO_CHOICES = ['auto', 'threadpool', 'iosubmit', 'fs'] as const;
export type AioChoice = (typeof AIO_CHOICES)[number];

/** Zero configuration inside a guest: the two host<->guest channels. */
export const DEFAULT_LISTEN = ['vsock://any:1024', 'virtio-serial:org.vmlink.agent.0'] as const;

export interface AgentLimits {
  /** Largest RPC frame accepted (bounds params; checked before allocation). */
  readonly maxFrameBytes: number;
  /** Largest file accepted by fs.write. */
  readonly maxWriteBytes: number;
  /** Requests in flight per connection; more are refused with ERR_VMLINK_TOO_MANY_STREAMS. */
  readonly maxConcurrentPerConnection: number;
  /** Entries returned by one fs.list. */
  readonly maxListEntries: number;
  /** Bytes of exec output buffered for a client that does not read. */
  readonly execOutputHighWaterMark: number;
  /** How long in-flight requests get to finish after SIGTERM. */
  readonly shutdownGraceMs: number;
}

export const DEFAULT_LIMITS: AgentLimits = {
  maxFrameBytes: 1024 * 1024,
  maxWriteBytes: 16 * 1024 ** 3,
  maxConcurrentPerConnection: 16,
  maxListEntries: 10_000,
  execOutputHighWaterMark: 256 * 1024,
  shutdownGraceMs: 10_000,
};

export interface AgentOptions {
  readonly listen: readonly string[];
  readonly aio: AioChoice;
  /** Undefined: file methods are refused (default deny). */
  readonly root: string | undefined;
  readonly allowExec: readonly string[];
  /** Log lines as JSON objects instead of text. */
  readonly jsonLog: boolean;
  readonly quiet: boolean;
  readonly limits: AgentLimits;
}

export type ParsedGuestArgs = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; options: AgentOptions };

export const GUEST_USAGE = `Usage: vmlink-guest [options]

The vmlink guest agent: serves ping, info, fs.stat, fs.list, fs.read, fs.write and exec
over every --listen transport at once.

Options:
  --listen URI         transport to serve, repeatable (default: ${DEFAULT_LISTEN.join(' and ')})
                       unix:/run/vmlink.sock  vsock://any:1024  virtio-serial:org.vmlink.agent.0
  --aio NAME           file I/O backend: auto | threadpool | iosubmit | fs (default: auto)
  --root DIR           confine file methods to DIR, shown to clients as /
                       (without it, file methods are refused)
  --allow-exec a,b,c   commands exec may run (bare names or absolute paths); default: none
  --grace-ms N         on SIGTERM, how long in-flight requests may take (default: ${DEFAULT_LIMITS.shutdownGraceMs})
  --max-streams N      requests in flight per connection (default: ${DEFAULT_LIMITS.maxConcurrentPerConnection})
  --json               log one JSON object per line instead of text
  --quiet              log nothing but errors
  --version            print the agent version
  --help               print this help

Logs go to stderr, one line per request: method, peer, duration, result code.
`;

export function usageError(message: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_USAGE', message);
}

export function parseGuestArgs(argv: readonly string[]): ParsedGuestArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        listen: { type: 'string', multiple: true },
        aio: { type: 'string', default: 'auto' },
        root: { type: 'string' },
        'allow-exec': { type: 'string', multiple: true },
        'grace-ms': { type: 'string' },
        'max-streams': { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw usageError((err as Error).message);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const aio = values.aio ?? 'auto';
  if (!isAioChoice(aio)) throw usageError(`--aio must be one of ${AIO_CHOICES.join(', ')}, got '${aio}'`);
  const listen = values.listen && values.listen.length > 0 ? values.listen : [...DEFAULT_LISTEN];
  if (values.root === '') throw usageError('--root must not be empty');
  let allowExec: string[];
  try {
    allowExec = parseAllowExec(values['allow-exec'] ?? []);
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const limits: AgentLimits = {
    ...DEFAULT_LIMITS,
    shutdownGraceMs: positiveInt(values['grace-ms'], '--grace-ms', DEFAULT_LIMITS.shutdownGraceMs),
    maxConcurrentPerConnection: positiveInt(values['max-streams'], '--max-streams', DEFAULT_LIMITS.maxConcurrentPerConnection),
  };
  return {
    kind: 'run',
    options: { listen, aio, root: values.root, allowExec, jsonLog: values.json ?? false, quiet: values.quiet ?? false, limits },
  };
}

function isAioChoice(value: string): value is AioChoice {
  return (AIO_CHOICES as readonly string[]).includes(value);
}

function positiveInt(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) throw usageError(`${flag} must be a positive integer, got '${raw}'`);
  return n;
}
