import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import { EXIT_CODE_HELP } from './exit-codes.js';
import { type CopyPlan, planCopy } from './remote-spec.js';

export const DEFAULT_TIMEOUT_MS = 10_000;

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
  | { name: 'cp'; plan: CopyPlan; progress: boolean | undefined; common: CommonOptions }
  | { name: 'exec'; uri: string; command: string; args: string[]; common: CommonOptions }
  | { name: 'bench'; uri: string; rounds: number; sizeMiB: number; common: CommonOptions };

export const COMMAND_NAMES = ['ping', 'info', 'ls', 'cp', 'exec', 'bench'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

const COMMON_HELP = `  --json           print the result as JSON (one object)
  --timeout MS     connect timeout and longest silence from the agent (default ${DEFAULT_TIMEOUT_MS})
  --uri URI        the agent URI, instead of the positional one
  --wait           if nothing listens yet (agent booting or restarting), retry until --timeout
  --transport MODULE
                   load a transport plugin (package name or path exporting a factory;
                   MODULE#name picks the export), repeatable; also VMLINK_TRANSPORTS=a,b
  --help           this help`;

export const HELP: Readonly<Record<CommandName | 'main', string>> = {
  main: `Usage: vmlink COMMAND [options]

Talk to a vmlink-guest agent over any transport URI:
  unix:/path/agent.sock   vsock://CID:PORT   virtio-serial+unix:/path/chardev.sock
  hvsock:/path/v.sock:PORT   (a guest's vsock through its VMM's Unix socket: Firecracker,
                              Cloud Hypervisor, vhost-user-vsock)

Commands:
  ping URI                 round trip to the agent
  info URI [--json]        host name, kernel, uptime, load, memory, CPUs, vsock CID
  ls URI PATH              list a remote directory
  cp URI:/PATH LOCAL       download a file (SHA-256 verified)
  cp LOCAL URI:/PATH       upload a file (SHA-256 verified, fsync'd, atomic rename)
  exec URI -- CMD ARGS     run an allowed command; exits with its exit code
  bench URI                round-trip latency and bulk throughput

Run 'vmlink COMMAND --help' for a command's options.

${EXIT_CODE_HELP}`,
  ping: `Usage: vmlink ping URI [--count N] [--json]

Sends N pings (default 1) and prints each round-trip time.

${COMMON_HELP}
  --count N        number of pings`,
  info: `Usage: vmlink info URI [--json]

Prints what the agent reports about its machine: host name, kernel, uptime, load,
memory, CPUs, local vsock CID, agent version and the transports it serves.

${COMMON_HELP}`,
  ls: `Usage: vmlink ls URI PATH [--json]

Lists a directory under the agent's --root (the root is shown as /).

${COMMON_HELP}`,
  cp: `Usage: vmlink cp URI:/PATH LOCAL      (download)
       vmlink cp LOCAL URI:/PATH      (upload)
       vmlink --uri URI cp :PATH LOCAL / cp LOCAL :PATH

Copies one file. Both sides are written to a temporary name and renamed only once the
SHA-256 of what was received matches the sender's: a failed copy never leaves a half file.
URI:PATH split rule: the remote path starts at the first ':' followed by '/' after the
URI's scheme, e.g. unix:/tmp/a.sock:/etc/hosts is unix:/tmp/a.sock + /etc/hosts. For
hvsock: it starts after the port: hvsock:/run/v.sock:1024:/etc/hosts is
hvsock:/run/v.sock:1024 + /etc/hosts. If the socket path itself contains ':/' (for hvsock:
':DIGITS:/'), pass the URI with --uri and mark the remote side ':PATH'.
A local path that looks like a URI can be written ./name.

${COMMON_HELP}
  --progress       draw the progress bar even when stderr is not a terminal
  --no-progress    never draw it (default: only on a terminal)`,
  exec: `Usage: vmlink exec URI [--json] -- CMD [ARGS...]

Runs CMD on the agent (it must be in the agent's --allow-exec), streams its stdout and
stderr, and exits with its exit code (128+N when killed by signal N). With --json the
output is collected and printed as {"exitCode","signal","stdout","stderr"}.

${COMMON_HELP}`,
  bench: `Usage: vmlink bench URI [--rounds N] [--size MIB] [--json]

Measures ping round trips (N rounds, default 200) and bulk throughput both ways with a
file of MIB MiB (default 32) written to and read from the agent's root.

${COMMON_HELP}
  --rounds N       ping round trips
  --size MIB       bulk transfer size in MiB`,
};

export function usageError(message: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_USAGE', message);
}

/** `VMLINK_TRANSPORTS=a,./b.js`: modules loaded as if each were given with --transport. */
export function transportsFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env['VMLINK_TRANSPORTS'] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
}

export function parseHostArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      tokens: true,
      options: {
        json: { type: 'boolean', default: false },
        wait: { type: 'boolean', default: false },
        timeout: { type: 'string' },
        uri: { type: 'string' },
        transport: { type: 'string', multiple: true },
        count: { type: 'string' },
        rounds: { type: 'string' },
        size: { type: 'string' },
        progress: { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const { values, tokens } = parsed;
  // Positionals after `--` belong to the remote command, never to us.
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  const positionals: string[] = [];
  const afterDashDash: string[] = [];
  for (const token of tokens) {
    if (token.kind !== 'positional') continue;
    if (terminator && token.index > terminator.index) afterDashDash.push(token.value);
    else positionals.push(token.value);
  }

  const [name, ...rest] = positionals;
  if (values.version) return { name: 'version' };
  if (name === undefined) {
    if (values.help) return { name: 'help', topic: undefined };
    throw usageError(`missing COMMAND (one of ${COMMAND_NAMES.join(', ')}); try 'vmlink --help'`);
  }
  if (name === 'help') {
    const topic = rest[0];
    return { name: 'help', topic: topic !== undefined && isCommandName(topic) ? topic : undefined };
  }
  if (!isCommandName(name)) throw usageError(`unknown command '${name}' (one of ${COMMAND_NAMES.join(', ')})`);
  if (values.help) return { name: 'help', topic: name };

  const common: CommonOptions = {
    json: values.json ?? false,
    timeoutMs: positiveInt(values.timeout, '--timeout', DEFAULT_TIMEOUT_MS),
    wait: values.wait ?? false,
    transports: [...transportsFromEnv(env), ...(values.transport ?? [])],
  };
  if (common.transports.some((m) => m.trim() === '')) throw usageError('--transport needs a module name or path');
  const explicitUri = values.uri;
  const takeUri = (): string => {
    if (explicitUri !== undefined) return explicitUri;
    const uri = rest.shift();
    if (uri === undefined) throw usageError(`${name} needs a URI (e.g. unix:/run/vmlink.sock); see 'vmlink ${name} --help'`);
    return uri;
  };
  const noMore = (): void => {
    if (rest.length > 0) throw usageError(`${name}: unexpected argument '${rest[0]}'`);
  };

  switch (name) {
    case 'ping': {
      const uri = takeUri();
      noMore();
      return { name, uri, count: positiveInt(values.count, '--count', 1), common };
    }
    case 'info': {
      const uri = takeUri();
      noMore();
      return { name, uri, common };
    }
    case 'ls': {
      const uri = takeUri();
      const path = rest.shift() ?? '/';
      noMore();
      return { name, uri, path, common };
    }
    case 'cp': {
      const [src, dst, ...extra] = rest;
      if (src === undefined || dst === undefined) throw usageError(`cp needs SRC and DST; see 'vmlink cp --help'`);
      if (extra.length > 0) throw usageError(`cp: unexpected argument '${extra[0]}'`);
      if (values.progress && values['no-progress']) throw usageError('--progress and --no-progress contradict each other');
      const progress = values.progress ? true : values['no-progress'] ? false : undefined;
      return { name, plan: planCopy(src, dst, explicitUri), progress, common };
    }
    case 'exec': {
      const uri = takeUri();
      noMore();
      const [command, ...args] = afterDashDash;
      if (!terminator || command === undefined) throw usageError(`exec needs '-- CMD [ARGS...]'; see 'vmlink exec --help'`);
      return { name, uri, command, args, common };
    }
    case 'bench': {
      const uri = takeUri();
      noMore();
      return {
        name,
        uri,
        rounds: positiveInt(values.rounds, '--rounds', 200),
        sizeMiB: positiveInt(values.size, '--size', 32),
        common,
      };
    }
  }
}

function isCommandName(value: string): value is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(value);
}

function positiveInt(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) throw usageError(`${flag} must be a positive integer, got '${raw}'`);
  return n;
}
