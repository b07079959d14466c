import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import type { Transport } from '@vmlink/transport';
import { MethodAccess, parseMethodList } from './access/method-access.js';
import { HOST_CID } from './access/peer-access.js';
import { defaultPerPeer } from './limits/connection-slots.js';
import { parseAllowExec } from './policy/exec-policy.js';
import { parseAllowEnv } from './exec/env.js';
import { FIXED_EXEC_PATH } from './policy/exec-resolve.js';
import { ForwardPolicy, type ForwardTarget } from './policy/forward-policy.js';

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
  /** Connections at once, over all listeners. */
  readonly maxConnections: number;
  /** Connections of one peer (uid, CID); the rest of maxConnections is kept for others. */
  readonly maxConnectionsPerPeer: number;
  /** A connection that received nothing this long, with no request in flight, is closed; 0: never. */
  readonly idleTimeoutMs: number;
  /** A frame must be complete this long after its first byte; 0: never. */
  readonly frameTimeoutMs: number;
  /** Memory all streaming requests together may hold (see METHOD_MEMORY_COST). */
  readonly memoryBudgetBytes: number;
  /** exec: the whole process group is killed after this long. */
  readonly execTimeoutMs: number;
  /** exec: the most bytes of stdout, and of stderr, one command may send (--exec-max-output); a client may ask for less. */
  readonly execMaxOutputBytes?: number;
  /** Detached processes running at once (`--max-detached`); 0 disables them. */
  readonly maxDetached?: number;
  /** Exited detached processes remembered, oldest exited forgotten first (`--max-detached-exited`). */
  readonly maxDetachedExited?: number;
  /** Bytes of output kept per stream of each detached process (`--detached-output`). */
  readonly detachedOutputBytes?: number;
}

export const DEFAULT_LIMITS: AgentLimits = {
  maxFrameBytes: 1024 * 1024,
  maxWriteBytes: 16 * 1024 ** 3,
  maxConcurrentPerConnection: 16,
  maxListEntries: 10_000,
  execOutputHighWaterMark: 256 * 1024,
  shutdownGraceMs: 10_000,
  maxConnections: 64,
  maxConnectionsPerPeer: defaultPerPeer(64),
  idleTimeoutMs: 300_000,
  frameTimeoutMs: 30_000,
  memoryBudgetBytes: 256 * 1024 * 1024,
  execTimeoutMs: 60_000,
  execMaxOutputBytes: 1024 ** 3,
  maxDetached: 16,
  maxDetachedExited: 16,
  detachedOutputBytes: 1024 * 1024,
};

/** Who may connect and what they may call (default deny). */
export interface AccessOptions {
  /** Unix sockets: peer uids allowed (SO_PEERCRED); default the agent's own uid. */
  readonly allowUids: readonly number[];
  /** vsock: peer CIDs allowed; default [2] (the host). */
  readonly allowCids: readonly number[] | 'any';
  /** Serve `unix:@name` (abstract sockets have no file permissions). */
  readonly allowAbstract: boolean;
  /**
   * Transports (by name) whose connections are served although the kernel reports no
   * peer identity for them (a `tcp:` plugin): `--trust-transport`. A uid or CID they do
   * report is still checked.
   */
  readonly trustTransports?: readonly string[];
  /** Methods served: --allow-rpcs minus --block-rpcs (all when neither is given). */
  readonly methods: MethodAccess;
}

export interface AgentOptions {
  readonly listen: readonly string[];
  /**
   * Your own transport plugins, by module (`--transport MODULE`, `VMLINK_TRANSPORTS`): a
   * package name or a path exporting a factory (`MODULE#factory` to pick one). Loaded at
   * start; one that cannot be loaded stops the start.
   */
  readonly transportModules?: readonly string[];
  /** Transports built by a program that runs the agent as a library. */
  readonly transports?: readonly Transport[];
  readonly aio: AioChoice;
  /** Undefined: file methods are refused (default deny). */
  readonly root: string | undefined;
  readonly allowExec: readonly string[];
  /** Environment variable names exec may set (`--allow-env`); never PATH or LD_*; default none. */
  readonly allowEnv?: readonly string[];
  /** Guest TCP targets net.connect / net.probe may reach (`--allow-forward`); default none. */
  readonly allowForward?: readonly ForwardTarget[];
  /** Files with more than one hard link are served (refused by default). */
  readonly allowHardlinks: boolean;
  readonly access: AccessOptions;
  /** Log lines as JSON objects instead of text. */
  readonly jsonLog: boolean;
  readonly quiet: boolean;
  readonly limits: AgentLimits;
}

export type ParsedGuestArgs = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; options: AgentOptions };

export const GUEST_USAGE = `Usage: vmlink-guest [options]

The vmlink guest agent: serves ping, info, exec (on pipes or a PTY; exec.stdin,
exec.signal), detached processes (detached.start, detached.list, detached.wait,
detached.kill, detached.attach), the file methods (fs.stat, fs.list, fs.read,
fs.write, fs.hash, fs.mkdir, fs.rm, fs.mv, fs.chmod, fs.utimes) and port forwarding
(net.probe, net.connect, net.send) over every --listen transport at once.

Options:
  --listen URI         transport to serve, repeatable (default: ${DEFAULT_LISTEN.join(' and ')})
                       unix:/run/vmlink.sock  vsock://any:1024  virtio-serial:org.vmlink.agent.0
  --aio NAME           file I/O backend: auto | threadpool | iosubmit | fs (default: auto)
  --root DIR           confine file methods to DIR, shown to clients as /
                       (without it, file methods are refused)
  --allow-exec a,b,c   commands exec may run (bare names or absolute paths); default: none
                       bare names are found in ${FIXED_EXEC_PATH} only
  --allow-forward H:P[,H:P]
                       guest TCP targets the host may forward to and probe (vmlink forward,
                       vmlink wait-port), repeatable; IP or localhost and port; default: none
  --allow-hardlinks    serve files that have more than one hard link (refused by default)
  --exec-timeout MS    exec's process group is killed after MS (default: ${DEFAULT_LIMITS.execTimeoutMs});
                       not terminal sessions (exec with pty): they end when their client disconnects
  --exec-max-output SIZE
                       most bytes of stdout, and of stderr, one exec may send, e.g. 64M (default: 1G)
  --allow-env A,B      environment variables exec may set (never PATH, LD_*); default: none
  --max-detached N     detached processes (vmlink exec --detach) running at once; 0 disables them (default: 16)
  --max-detached-exited N
                       exited detached processes remembered for ps/wait/attach (default: 16)
  --detached-output SIZE
                       output kept per stream of each detached process, e.g. 1M (default: 1M)

Your own transports:
  --transport MODULE   a transport plugin to load, repeatable: a package name or a path
                       (./my-transport.js) exporting a factory; MODULE#name picks the export.
                       Also from VMLINK_TRANSPORTS (comma-separated). Its schemes can be --listen'ed.
  --trust-transport NAME
                       serve connections of transport NAME although it reports no peer
                       identity (uid, CID) to check, repeatable; refused by default

Who may connect (default deny):
  --allow-uid U[,U]    Unix socket peers (SO_PEERCRED) allowed, repeatable (default: the agent's own uid)
  --allow-cid C[,C]    vsock peers allowed, repeatable; 'any' for all (default: ${HOST_CID}, the host)
  --allow-abstract     allow listening on abstract Unix sockets (unix:@name)
  --allow-rpcs a,b     serve only these methods
  --block-rpcs a,b     do not serve these methods

Limits:
  --max-connections N  connections at once (default: ${DEFAULT_LIMITS.maxConnections}); idle ones are closed to admit new ones
  --max-connections-per-peer N
                       connections of one uid or CID (default: max-connections minus 8, or minus a quarter of a small cap)
  --max-streams N      requests in flight per connection (default: ${DEFAULT_LIMITS.maxConcurrentPerConnection})
  --idle-timeout MS    close connections idle this long, 0 = never (default: ${DEFAULT_LIMITS.idleTimeoutMs})
  --frame-timeout MS   close connections that leave a frame unfinished this long, 0 = never (default: ${DEFAULT_LIMITS.frameTimeoutMs})
  --memory-budget SIZE memory all connections together may hold, e.g. 256M (default: 256M)
  --grace-ms N         on SIGTERM, how long in-flight requests may take (default: ${DEFAULT_LIMITS.shutdownGraceMs})

Logging:
  --json               log one JSON object per line instead of text
  --quiet              log nothing but errors (client mistakes are warnings)

  --version            print the agent version
  --help               print this help

Logs go to stderr, one line per request: method, peer, duration, result code.
`;

export function usageError(message: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_USAGE', message);
}

/** `VMLINK_TRANSPORTS=a,./b.js`: modules loaded as if each were given with --transport. */
export function transportsFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env['VMLINK_TRANSPORTS'] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
}

export function parseGuestArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedGuestArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        listen: { type: 'string', multiple: true },
        transport: { type: 'string', multiple: true },
        'trust-transport': { type: 'string', multiple: true },
        aio: { type: 'string', default: 'auto' },
        root: { type: 'string' },
        'allow-exec': { type: 'string', multiple: true },
        'allow-forward': { type: 'string', multiple: true },
        'grace-ms': { type: 'string' },
        'max-streams': { type: 'string' },
        'allow-hardlinks': { type: 'boolean', default: false },
        'exec-timeout': { type: 'string' },
        'exec-max-output': { type: 'string' },
        'allow-env': { type: 'string', multiple: true },
        'max-detached': { type: 'string' },
        'max-detached-exited': { type: 'string' },
        'detached-output': { type: 'string' },
        'allow-uid': { type: 'string', multiple: true },
        'allow-cid': { type: 'string', multiple: true },
        'allow-abstract': { type: 'boolean', default: false },
        'allow-rpcs': { type: 'string', multiple: true },
        'block-rpcs': { type: 'string', multiple: true },
        'max-connections': { type: 'string' },
        'max-connections-per-peer': { type: 'string' },
        'idle-timeout': { type: 'string' },
        'frame-timeout': { type: 'string' },
        'memory-budget': { type: 'string' },
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
  let allowForward: readonly ForwardTarget[];
  try {
    allowForward = ForwardPolicy.parse(values['allow-forward'] ?? []).allowed;
  } catch (err) {
    throw usageError(`--allow-forward: ${(err as Error).message}`);
  }
  const allowAbstract = values['allow-abstract'] ?? false;
  const abstract = listen.filter((uri) => uri.startsWith('unix:@'));
  if (abstract.length > 0 && !allowAbstract) {
    throw usageError(`${abstract.join(', ')}: abstract Unix sockets have no file permissions; add --allow-abstract to serve them`);
  }
  let methods: MethodAccess;
  try {
    const allow = values['allow-rpcs'] === undefined ? undefined : parseMethodList(values['allow-rpcs']);
    methods = MethodAccess.from(allow, parseMethodList(values['block-rpcs'] ?? []));
  } catch (err) {
    throw usageError(`--allow-rpcs/--block-rpcs: ${(err as Error).message}`);
  }
  const maxConnections = positiveInt(values['max-connections'], '--max-connections', DEFAULT_LIMITS.maxConnections);
  const maxConnectionsPerPeer = positiveInt(values['max-connections-per-peer'], '--max-connections-per-peer', defaultPerPeer(maxConnections));
  if (maxConnectionsPerPeer > maxConnections) {
    throw usageError(`--max-connections-per-peer ${maxConnectionsPerPeer} exceeds --max-connections ${maxConnections}`);
  }
  const limits: AgentLimits = {
    ...DEFAULT_LIMITS,
    shutdownGraceMs: positiveInt(values['grace-ms'], '--grace-ms', DEFAULT_LIMITS.shutdownGraceMs),
    maxConcurrentPerConnection: positiveInt(values['max-streams'], '--max-streams', DEFAULT_LIMITS.maxConcurrentPerConnection),
    maxConnections,
    maxConnectionsPerPeer,
    idleTimeoutMs: nonNegativeInt(values['idle-timeout'], '--idle-timeout', DEFAULT_LIMITS.idleTimeoutMs),
    frameTimeoutMs: nonNegativeInt(values['frame-timeout'], '--frame-timeout', DEFAULT_LIMITS.frameTimeoutMs),
    memoryBudgetBytes: byteSize(values['memory-budget'], '--memory-budget', DEFAULT_LIMITS.memoryBudgetBytes),
    execTimeoutMs: positiveInt(values['exec-timeout'], '--exec-timeout', DEFAULT_LIMITS.execTimeoutMs),
    execMaxOutputBytes: byteSize(values['exec-max-output'], '--exec-max-output', DEFAULT_LIMITS.execMaxOutputBytes ?? 1024 ** 3),
    maxDetached: nonNegativeInt(values['max-detached'], '--max-detached', DEFAULT_LIMITS.maxDetached ?? 16),
    maxDetachedExited: nonNegativeInt(values['max-detached-exited'], '--max-detached-exited', DEFAULT_LIMITS.maxDetachedExited ?? 16),
    detachedOutputBytes: byteSize(values['detached-output'], '--detached-output', DEFAULT_LIMITS.detachedOutputBytes ?? 1024 * 1024),
  };
  const access: AccessOptions = {
    allowUids: idList(values['allow-uid'], '--allow-uid', [ownUid()]),
    allowCids: cidList(values['allow-cid']),
    allowAbstract,
    methods,
    trustTransports: parseMethodList(values['trust-transport'] ?? []),
  };
  const transportModules = [...transportsFromEnv(env), ...(values.transport ?? [])];
  if (transportModules.some((m) => m.trim() === '')) throw usageError('--transport needs a module name or path');
  return {
    kind: 'run',
    options: {
      listen,
      transportModules,
      aio,
      root: values.root,
      allowExec,
      allowEnv: allowEnv(values['allow-env']),
      allowForward,
      allowHardlinks: values['allow-hardlinks'] ?? false,
      access,
      jsonLog: values.json ?? false,
      quiet: values.quiet ?? false,
      limits,
    },
  };
}

function allowEnv(raw: readonly string[] | undefined): string[] {
  try {
    return parseAllowEnv(raw ?? []);
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

function ownUid(): number {
  return process.getuid?.() ?? 0;
}

/** Comma lists, repeatable, of ids 0..2^32-2 (2^32-1 is "no id" to the kernel). */
function idList(raw: readonly string[] | undefined, flag: string, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  const ids = raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (ids.length === 0) throw usageError(`${flag} needs at least one id`);
  return [...new Set(ids.map((id) => {
    const n = Number(id);
    if (!/^\d+$/.test(id) || !Number.isSafeInteger(n) || n > 0xffff_fffe) throw usageError(`${flag}: '${id}' is not an id (0..4294967294)`);
    return n;
  }))];
}

function cidList(raw: readonly string[] | undefined): number[] | 'any' {
  if (raw === undefined) return [HOST_CID];
  const entries = raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (entries.includes('any')) return 'any';
  return idList(entries, '--allow-cid', [HOST_CID]);
}

function nonNegativeInt(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  if (raw === '0') return 0;
  return positiveInt(raw, flag, fallback);
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** `1048576`, `512K`, `256M`, `1G` (binary units). */
function byteSize(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const match = /^(\d+)([KMG]?)i?B?$/i.exec(raw.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? '').toUpperCase()];
  const n = match && unit !== undefined ? Number(match[1]) * unit : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw usageError(`${flag} must be a size like 256M or 1073741824, got '${raw}'`);
  return n;
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

/**
 * What `Agent.start()` takes as a library: any part of AgentOptions. What is left out gets
 * the CLI's defaults, default deny included (no --root, no exec, own uid, host CID only).
 */
export type AgentStartOptions = Partial<Omit<AgentOptions, 'access' | 'limits'>> & {
  readonly access?: Partial<AccessOptions>;
  readonly limits?: Partial<AgentLimits>;
};

export function resolveAgentOptions(input: AgentStartOptions): AgentOptions {
  if (input === null || typeof input !== 'object') throw usageError('Agent.start: options must be an object');
  const limits: AgentLimits = { ...DEFAULT_LIMITS, ...input.limits };
  if (input.limits?.maxConnections !== undefined && input.limits.maxConnectionsPerPeer === undefined) {
    (limits as { maxConnectionsPerPeer: number }).maxConnectionsPerPeer = defaultPerPeer(limits.maxConnections);
  }
  const listen = input.listen && input.listen.length > 0 ? input.listen : [...DEFAULT_LISTEN];
  const abstract = listen.filter((uri) => uri.startsWith('unix:@'));
  if (abstract.length > 0 && !input.access?.allowAbstract) {
    throw usageError(`${abstract.join(', ')}: abstract Unix sockets have no file permissions; set access.allowAbstract to serve them`);
  }
  return {
    listen,
    transportModules: input.transportModules ?? [],
    transports: input.transports ?? [],
    aio: input.aio ?? 'auto',
    root: input.root,
    allowExec: input.allowExec ?? [],
    // Checked here as for --allow-env: a library caller cannot allow PATH or LD_* either.
    allowEnv: allowEnv(input.allowEnv),
    allowForward: input.allowForward ?? [],
    allowHardlinks: input.allowHardlinks ?? false,
    access: {
      allowUids: input.access?.allowUids ?? [ownUid()],
      allowCids: input.access?.allowCids ?? [HOST_CID],
      allowAbstract: input.access?.allowAbstract ?? false,
      methods: input.access?.methods ?? MethodAccess.all(),
      trustTransports: input.access?.trustTransports ?? [],
    },
    jsonLog: input.jsonLog ?? false,
    quiet: input.quiet ?? false,
    limits,
  };
}
