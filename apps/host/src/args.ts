import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import { byteSize } from './byte-size.js';
import { EXIT_CODE_HELP } from './exit-codes.js';
import {
  COMMAND_NAMES,
  COMMAND_OPTIONS,
  COMMON_OPTIONS,
  DEFAULT_TIMEOUT_MS,
  GLOBAL_OPTIONS,
  allOptions,
  didYouMean,
  optionHelp,
  ownersOf,
  splitPositionals,
  type CommandName,
} from './options-spec.js';
import { type CopyPlan, planCopy } from './remote-spec.js';
import { type ForwardSpec, parseDuration, parseForwardSpec } from './commands/forward.js';
import { detachedHelp } from './commands/detached.js';
import { SHELL_HELP } from './terminal/route.js';
import type { ExecRequestOptions } from '@vmlink/agent-protocol';

export { COMMAND_NAMES, DEFAULT_TIMEOUT_MS, type CommandName };

export interface CommonOptions {
  readonly json: boolean;
  /** Connect timeout, and the longest silence tolerated while a request runs. */
  readonly timeoutMs: number;
  /** Keep dialing an agent that is not up yet (booting, restarting) until the timeout. */
  readonly wait: boolean;
  /** Transport plugins to load besides the first-party ones (--transport, VMLINK_TRANSPORTS). */
  readonly transports: readonly string[];
}

export type Command =
  | { name: 'help'; topic: CommandName | undefined }
  | { name: 'version' }
  | { name: 'ping'; uri: string; count: number; common: CommonOptions }
  | { name: 'info'; uri: string; common: CommonOptions }
  | { name: 'ls'; uri: string; path: string; common: CommonOptions }
  | { name: 'stat'; uri: string; path: string; common: CommonOptions }
  | { name: 'cp'; plan: CopyPlan; progress: boolean | undefined; recursive: boolean; resume: boolean; common: CommonOptions }
  | { name: 'mkdir'; uri: string; path: string; parents: boolean; mode: number | undefined; common: CommonOptions }
  | { name: 'rm'; uri: string; path: string; recursive: boolean; common: CommonOptions }
  | { name: 'mv'; uri: string; from: string; to: string; common: CommonOptions }
  | { name: 'chmod'; uri: string; mode: number; path: string; common: CommonOptions }
  | { name: 'exec'; uri: string; command: string; args: string[]; stdin: boolean; request?: ExecRequestOptions; common: CommonOptions }
  | { name: 'forward'; uri: string; spec: ForwardSpec; common: CommonOptions }
  | { name: 'wait-port'; uri: string; host: string; port: number; common: CommonOptions }
  | { name: 'bench'; uri: string; rounds: number; sizeMiB: number; common: CommonOptions };

const COMMON_HELP = optionHelp(COMMON_OPTIONS);

function commandHelp(name: CommandName, usage: string, body: string): string {
  const own = optionHelp(COMMAND_OPTIONS[name]);
  return `${usage}\n\n${body}\n\n${own ? `Options:\n${own}\n\n` : ''}Common options:\n${COMMON_HELP}`;
}

export const HELP: Readonly<Record<CommandName | 'main', string>> = {
  main: `Usage: vmlink COMMAND [options]

Talk to a vmlink-guest agent over any transport URI:
  unix:/path/agent.sock   vsock://CID:PORT   virtio-serial+unix:/path/chardev.sock
  hvsock:/path/v.sock:PORT   (a guest's vsock through its VMM's Unix socket: Firecracker,
                              Cloud Hypervisor, vhost-user-vsock)
  or any scheme of a plugin loaded with --transport MODULE

Commands:
  ping URI                 round trip to the agent
  info URI [--json]        host name, kernel, uptime, load, memory, CPUs, vsock CID
  ls URI PATH              list a remote directory
  stat URI PATH            type, size, mode, owner and mtime of a remote path
  cp URI:/PATH LOCAL       download a file, or a tree with -r (SHA-256 verified)
  cp LOCAL URI:/PATH       upload a file, or a tree with -r (SHA-256 verified, atomic rename)
  mkdir URI PATH           create a remote directory (-p: with its parents)
  rm URI PATH              remove a remote file or link (-r: a directory tree)
  mv URI FROM TO           rename a remote path (into TO if it is a directory)
  chmod URI MODE PATH      set permission bits (octal, at most 777)
  exec URI -- CMD ARGS     run an allowed command; exits with its exit code
                           (--env NAME=VALUE, --cwd DIR, --max-output SIZE)
  exec -it URI -- CMD      run it on a terminal in the guest (raw mode, window size, Ctrl-C)
  shell URI                an interactive sh on a terminal in the guest
  exec --detach URI -- CMD start it detached: prints its id, keeps running without us
  ps URI                   list the agent's detached processes
  wait URI ID              wait for a detached process; exits with its exit code
  kill URI ID [--signal S] signal a detached process's group (default TERM)
  attach URI ID            stream a detached process's output (again after a reconnect)
  forward URI [BIND:]LPORT:HOST:PORT
                           carry TCP connections to LPORT on the host to HOST:PORT in the guest
  wait-port URI HOST:PORT  wait until HOST:PORT in the guest accepts connections (--timeout 30s)
  bench URI                round-trip latency and bulk throughput

Options:
${optionHelp(GLOBAL_OPTIONS)}
${COMMON_HELP}

Run 'vmlink COMMAND --help' for a command's options.

${EXIT_CODE_HELP}`,
  ping: commandHelp('ping', 'Usage: vmlink ping URI [--count N] [--json]', 'Sends N pings (default 1) and prints each round-trip time.'),
  info: commandHelp(
    'info',
    'Usage: vmlink info URI [--json]',
    'Prints what the agent reports about its machine: host name, kernel, uptime, load,\nmemory, CPUs, local vsock CID, agent version and the transports it serves.',
  ),
  ls: commandHelp('ls', 'Usage: vmlink ls URI PATH [--json]', "Lists a directory under the agent's --root (the root is shown as /)."),
  stat: commandHelp('stat', 'Usage: vmlink stat URI PATH [--json]', 'Prints the type, size, permission bits, owner and modification time of PATH\n(a symlink is followed while it stays inside the root).'),
  cp: commandHelp(
    'cp',
    `Usage: vmlink cp [-r] [--resume] URI:/PATH LOCAL      (download)
       vmlink cp [-r] [--resume] LOCAL URI:/PATH      (upload)
       vmlink --uri URI cp :PATH LOCAL / cp LOCAL :PATH`,
    `Copies a file, or with -r a directory tree (permission bits and mtimes kept; symlinks
and special files are skipped and counted). Each file is written to a temporary name and
renamed only once the SHA-256 of what was received matches the sender's: a failed copy
never leaves a half file. --resume continues an interrupted copy: a download keeps what it
already wrote, an upload what the agent kept; the prefix's SHA-256 is compared on both sides
and only the rest is sent (a prefix that differs is copied again from 0).
URI:PATH split rule: the remote path starts at the first ':' followed by '/' after the
URI's scheme, e.g. unix:/tmp/a.sock:/etc/hosts is unix:/tmp/a.sock + /etc/hosts. For
hvsock: it starts after the port: hvsock:/run/v.sock:1024:/etc/hosts is
hvsock:/run/v.sock:1024 + /etc/hosts. If the socket path itself contains ':/' (for hvsock:
':DIGITS:/'), pass the URI with --uri and mark the remote side ':PATH'.
A local path that looks like a URI can be written ./name.`,
  ),
  mkdir: commandHelp('mkdir', 'Usage: vmlink mkdir URI PATH [-p] [--mode OCTAL]', 'Creates a directory under the agent root.'),
  rm: commandHelp('rm', 'Usage: vmlink rm URI PATH [-r]', 'Removes a file or a symlink (never what it points to); with -r a directory and\neverything in it. The root itself is never removed.'),
  mv: commandHelp('mv', 'Usage: vmlink mv URI FROM TO', 'Renames FROM to TO within the agent root; if TO is a directory, FROM moves into it.'),
  chmod: commandHelp('chmod', 'Usage: vmlink chmod URI MODE PATH', 'Sets the permission bits of PATH to MODE (octal, 0-777: no setuid, setgid or sticky).'),
  exec: commandHelp(
    'exec',
    `Usage: vmlink exec URI [--json] [--env NAME[=VALUE]]... [--cwd DIR] [--max-output SIZE] -- CMD [ARGS...]
       vmlink exec -it URI -- CMD [ARGS...]      (on a terminal: vmlink shell --help)
       vmlink exec --detach URI -- CMD [ARGS...] (detached: vmlink ps/wait/kill/attach)`,
    `Runs CMD on the agent (it must be in the agent's --allow-exec), streams our stdin to it
and its stdout and stderr back at the same time (flow-controlled both ways), and exits
with its exit code (128+N when killed by signal N). Ctrl-C (SIGINT) and SIGTERM are sent
to the command's process group; a second one sends SIGKILL. With --json the output is
collected and printed as {"exitCode","signal","stdout","stderr"}. --env names must be in
the agent's --allow-env (else exit 77); --cwd is under its --root; with --max-output a
stream is cut at SIZE bytes (the agent's --exec-max-output is the ceiling).`,
  ),
  forward: commandHelp(
    'forward',
    'Usage: vmlink forward URI [BIND:]LOCALPORT:GUESTHOST:GUESTPORT',
    `Listens on BIND:LOCALPORT on the host (BIND 127.0.0.1 by default; LOCALPORT 0 picks a free
port, printed) and carries every accepted TCP connection to GUESTHOST:GUESTPORT in the
guest. The agent must allow that target (--allow-forward HOST:PORT), else exit 77. One
agent connection per TCP connection where the transport has many (unix, vsock, hvsock),
all over one where it has one (virtio-serial). At most --max-active N forwards at once
(default: the room the agent's info reports, ERR_VMLINK_BUSY and TOO_MANY_STREAMS teach
less); later connections wait (up to 256 beyond the listen backlog, then are closed with
a log line). Runs until Ctrl-C.`,
  ),
  'wait-port': commandHelp(
    'wait-port',
    'Usage: vmlink wait-port URI HOST:PORT [--timeout 30s]',
    `Returns (exit 0) once HOST:PORT in the guest accepts TCP connections, probing with
backoff through the agent (which must allow the target: --allow-forward); waits for the
agent itself too. Exit 75 when --timeout (default 30s) passes first.`,
  ),
  shell: SHELL_HELP,
  ps: detachedHelp('ps'),
  wait: detachedHelp('wait'),
  kill: detachedHelp('kill'),
  attach: detachedHelp('attach'),
  bench: commandHelp(
    'bench',
    'Usage: vmlink bench URI [--rounds N] [--size MIB] [--json]',
    "Measures ping round trips and bulk throughput both ways with a file written to and\nread from the agent's root.",
  ),
};

/** A usage error; `command` (when known) points the user to that command's help. */
export class UsageError extends VmlinkError {
  constructor(
    message: string,
    readonly command?: CommandName,
  ) {
    super('ERR_VMLINK_USAGE', message);
  }
}

export function usageError(message: string, command?: CommandName): UsageError {
  return new UsageError(message, command);
}

/** `VMLINK_TRANSPORTS=a,./b.js`: modules loaded as if each were given with --transport. */
export function transportsFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env['VMLINK_TRANSPORTS'] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
}

type Token = NonNullable<ReturnType<typeof parseArgs>['tokens']>[number];

export function parseHostArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Command {
  const known = allOptions();
  let parsed;
  try {
    // Not strict: unknown options come back as tokens, so we can say what was meant.
    parsed = parseArgs({ args: [...argv], allowPositionals: true, strict: false, tokens: true, options: known });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const tokens: Token[] = parsed.tokens ?? [];
  const { positionals, afterDashDash, terminator } = splitPositionals(tokens);
  const [name, ...rest] = positionals;
  const command = name !== undefined && isCommandName(name) ? name : undefined;
  const values = parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>;
  if (values['version'] === true) return { name: 'version' };

  if (name === undefined) {
    if (values['help'] === true) return { name: 'help', topic: undefined };
    checkOptions(tokens, undefined);
    throw usageError(`missing COMMAND (one of ${COMMAND_NAMES.join(', ')})`);
  }
  if (name === 'help') {
    const topic = rest[0];
    return { name: 'help', topic: topic !== undefined && isCommandName(topic) ? topic : undefined };
  }
  if (command === undefined) {
    const guess = didYouMean(name, COMMAND_NAMES);
    throw usageError(`unknown command '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}; commands: ${COMMAND_NAMES.join(', ')}`);
  }
  if (values['help'] === true) return { name: 'help', topic: command };
  checkOptions(tokens, command);

  const str = (key: string): string | undefined => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
  const bool = (key: string): boolean => values[key] === true;
  const transports = (Array.isArray(values['transport']) ? values['transport'] : []).filter((v): v is string => typeof v === 'string');
  const common: CommonOptions = {
    json: bool('json'),
    timeoutMs: duration(str('timeout'), command === 'wait-port' ? 30_000 : DEFAULT_TIMEOUT_MS, command),
    wait: bool('wait'),
    transports: [...transportsFromEnv(env), ...transports],
  };
  if (transports.some((m) => m.trim() === '')) throw usageError('--transport needs a module name or path', command);
  const explicitUri = str('uri');
  const takeUri = (): string => {
    if (explicitUri !== undefined) return explicitUri;
    const uri = rest.shift();
    if (uri === undefined) throw usageError(`${command} needs a URI (e.g. unix:/run/vmlink.sock)`, command);
    return uri;
  };
  const take = (what: string): string => {
    const value = rest.shift();
    if (value === undefined) throw usageError(`${command} needs ${what}`, command);
    return value;
  };
  const noMore = (): void => {
    if (rest.length > 0) throw usageError(`${command}: unexpected argument '${rest[0]}'`, command);
  };
  if (command !== 'exec' && terminator) {
    throw usageError(`${command}: '--' is only for exec (arguments after it: ${afterDashDash.join(' ') || 'none'})`, command);
  }

  switch (command) {
    case 'ping': {
      const uri = takeUri();
      noMore();
      return { name: command, uri, count: positiveInt(str('count'), '--count', 1, command), common };
    }
    case 'info': {
      const uri = takeUri();
      noMore();
      return { name: command, uri, common };
    }
    case 'ls': {
      const uri = takeUri();
      const path = rest.shift() ?? '/';
      noMore();
      return { name: command, uri, path, common };
    }
    case 'stat': {
      const uri = takeUri();
      const path = take('a PATH');
      noMore();
      return { name: command, uri, path, common };
    }
    case 'cp': {
      const [src, dst, ...extra] = rest;
      if (src === undefined || dst === undefined) throw usageError('cp needs SRC and DST', command);
      if (extra.length > 0) throw usageError(`cp: unexpected argument '${extra[0]}'`, command);
      if (bool('progress') && bool('no-progress')) throw usageError('--progress and --no-progress contradict each other', command);
      const progress = bool('progress') ? true : bool('no-progress') ? false : undefined;
      let plan: CopyPlan;
      try {
        plan = planCopy(src, dst, explicitUri);
      } catch (error) {
        throw usageError((error as Error).message, command);
      }
      return { name: command, plan, progress, recursive: bool('recursive'), resume: bool('resume'), common };
    }
    case 'mkdir': {
      const uri = takeUri();
      const path = take('a PATH');
      noMore();
      const raw = str('mode');
      return { name: command, uri, path, parents: bool('parents'), mode: raw === undefined ? undefined : octalMode(raw, '--mode', command), common };
    }
    case 'rm': {
      const uri = takeUri();
      const path = take('a PATH');
      noMore();
      return { name: command, uri, path, recursive: bool('recursive'), common };
    }
    case 'mv': {
      const uri = takeUri();
      const from = take('FROM and TO');
      const to = take('FROM and TO');
      noMore();
      return { name: command, uri, from, to, common };
    }
    case 'chmod': {
      const uri = takeUri();
      const mode = octalMode(take('MODE and PATH'), 'MODE', command);
      const path = take('MODE and PATH');
      noMore();
      return { name: command, uri, mode, path, common };
    }
    case 'exec': {
      const uri = takeUri();
      noMore();
      const [cmd, ...args] = afterDashDash;
      if (!terminator || cmd === undefined) throw usageError(`exec needs '-- CMD [ARGS...]'`, command);
      if (bool('detach') || bool('tty')) throw usageError(`exec ${bool('detach') ? '--detach' : '-t'} is run by its own parser (vmlink's cli.ts routes it)`, command);
      const envValues = (Array.isArray(values['env']) ? values['env'] : []).filter((v): v is string => typeof v === 'string');
      const request = execRequest(envValues, str('cwd'), str('max-output'), env);
      return { name: command, uri, command: cmd, args, stdin: !bool('no-stdin'), ...(Object.keys(request).length > 0 ? { request } : {}), common };
    }
    case 'shell':
    case 'ps':
    case 'wait':
    case 'kill':
    case 'attach':
      // cli.ts hands these to terminal/route.ts and commands/detached.ts before this parser.
      throw usageError(`${command} is run by its own parser (vmlink's cli.ts routes it)`, command);
    case 'forward': {
      const uri = takeUri();
      const raw = take('[BIND:]LOCALPORT:GUESTHOST:GUESTPORT');
      noMore();
      try {
        const maxActive = str('max-active');
        const spec = parseForwardSpec(raw);
        return { name: command, uri, spec: maxActive === undefined ? spec : { ...spec, maxActive: positiveInt(maxActive, '--max-active', 1, command) }, common };
      } catch (error) {
        throw usageError((error as Error).message, command);
      }
    }
    case 'wait-port': {
      const uri = takeUri();
      const raw = take('HOST:PORT');
      noMore();
      const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(raw);
      const port = Number(match?.[2]);
      if (!match || port < 1 || port > 65535) throw usageError(`wait-port: '${raw}' is not HOST:PORT`, command);
      const host = (match[1] as string).replace(/^\[|\]$/g, '');
      return { name: command, uri, host, port, common };
    }
    case 'bench': {
      const uri = takeUri();
      noMore();
      return {
        name: command,
        uri,
        rounds: positiveInt(str('rounds'), '--rounds', 200, command),
        sizeMiB: positiveInt(str('size'), '--size', 32, command),
        common,
      };
    }
  }
}

/**
 * Every option token must be known, have a value if it takes one (and none if it does
 * not), and belong to the common set or to `command`.
 */
function checkOptions(tokens: readonly Token[], command: CommandName | undefined): void {
  const own = command === undefined ? {} : COMMAND_OPTIONS[command];
  const mine = { ...COMMON_OPTIONS, ...GLOBAL_OPTIONS, ...own };
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = mine[token.name];
    if (spec === undefined) {
      const owners = ownersOf(token.name);
      if (owners.length > 0) {
        const where = command === undefined ? 'without a command' : `of '${command}'`;
        throw usageError(`option '${token.rawName}' belongs to ${owners.map((o) => `'${o}'`).join(' and ')}, it is not an option ${where}`, command);
      }
      const guess = didYouMean(token.name, Object.keys(mine));
      throw usageError(`unknown option '${token.rawName}'${guess ? ` (did you mean '--${guess}'?)` : ''}`, command);
    }
    if (spec.type === 'string' && token.value === undefined) throw usageError(`option '${token.rawName} ${spec.value ?? 'VALUE'}' needs a value`, command);
    if (spec.type === 'boolean' && token.inlineValue) throw usageError(`option '${token.rawName}' takes no value (got '${token.value ?? ''}')`, command);
  }
}

function isCommandName(value: string): value is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(value);
}

function positiveInt(raw: string | undefined, flag: string, fallback: number, command: CommandName): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) throw usageError(`${flag} must be a positive integer, got '${raw}'`, command);
  return n;
}

function duration(raw: string | undefined, fallback: number, command: CommandName): number {
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw);
  if (ms === undefined) throw usageError(`--timeout must be a duration such as 5000, 500ms, 30s or 2m, got '${raw}'`, command);
  return ms;
}

/** exec's --env NAME[=VALUE] (NAME alone: our value), --cwd DIR, --max-output SIZE. */
function execRequest(entries: readonly string[], cwd: string | undefined, maxOutput: string | undefined, env: NodeJS.ProcessEnv): ExecRequestOptions {
  const request: ExecRequestOptions = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw usageError(`--env '${entry}' is not NAME=VALUE`, 'exec');
    const value = eq < 0 ? env[name] : entry.slice(eq + 1);
    if (value === undefined) throw usageError(`--env ${name}: not set here (give NAME=VALUE)`, 'exec');
    (request.env ??= {})[name] = value;
  }
  if (cwd !== undefined) {
    if (cwd === '') throw usageError('--cwd needs a directory', 'exec');
    request.cwd = cwd;
  }
  if (maxOutput !== undefined) {
    const bytes = byteSize(maxOutput);
    if (bytes === undefined) throw usageError(`--max-output must be a size like 64M or 1048576, got '${maxOutput}'`, 'exec');
    request.maxOutput = { stdout: bytes, stderr: bytes };
  }
  return request;
}

/** `755`, `0755`, `0o755`: permission bits in octal (the agent refuses anything above 777). */
function octalMode(raw: string, what: string, command: CommandName): number {
  const match = /^(?:0o?)?([0-7]{1,4})$/i.exec(raw);
  if (!match) throw usageError(`${what} must be an octal mode such as 755, got '${raw}'`, command);
  return Number.parseInt(match[1] as string, 8);
}
