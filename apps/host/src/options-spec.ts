/**
 * Which options exist and who owns them: the common ones every command takes, and each
 * command's own. An option of another command is a usage error naming its owner; an
 * unknown one gets a "did you mean". Pure data and pure functions.
 */

export interface OptionSpec {
  readonly type: 'boolean' | 'string';
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's name in help (`--count N`). */
  readonly value?: string;
  readonly help: string;
}

export const COMMAND_NAMES = [
  'ping',
  'info',
  'ls',
  'stat',
  'cp',
  'mkdir',
  'rm',
  'mv',
  'chmod',
  'exec',
  'shell',
  'ps',
  'wait',
  'kill',
  'attach',
  'forward',
  'wait-port',
  'bench',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export const DEFAULT_TIMEOUT_MS = 10_000;

export const COMMON_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: { type: 'boolean', help: 'print the result as JSON (one object)' },
  timeout: { type: 'string', value: 'TIME', help: `connect timeout and longest silence from the agent: ms, or 30s, 2m (default ${DEFAULT_TIMEOUT_MS} ms); wait-port: the whole wait` },
  uri: { type: 'string', value: 'URI', help: 'the agent URI, instead of the positional one' },
  wait: { type: 'boolean', help: 'if nothing listens yet (agent booting or restarting), retry until --timeout' },
  transport: {
    type: 'string',
    multiple: true,
    value: 'MODULE',
    help: 'load a transport plugin (package name or path exporting a factory; MODULE#name picks the export), repeatable; also VMLINK_TRANSPORTS=a,b',
  },
  help: { type: 'boolean', short: 'h', help: 'this help' },
};

/** Only meaningful without a command. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  version: { type: 'boolean', short: 'V', help: 'print the version' },
};

export const COMMAND_OPTIONS: Readonly<Record<CommandName, Readonly<Record<string, OptionSpec>>>> = {
  ping: { count: { type: 'string', value: 'N', help: 'number of pings (default 1)' } },
  info: {},
  ls: {},
  stat: {},
  cp: {
    recursive: { type: 'boolean', short: 'r', help: 'copy a directory tree (modes and mtimes kept)' },
    resume: { type: 'boolean', help: 'continue an interrupted copy (download or upload) after checking the SHA-256 of the prefix both sides have' },
    progress: { type: 'boolean', help: 'draw the progress bar even when stderr is not a terminal' },
    'no-progress': { type: 'boolean', help: 'never draw it (default: only on a terminal)' },
  },
  mkdir: {
    parents: { type: 'boolean', short: 'p', help: 'create missing parents; an existing directory is fine' },
    mode: { type: 'string', value: 'OCTAL', help: 'permission bits, e.g. 750 (default 755)' },
  },
  rm: { recursive: { type: 'boolean', short: 'r', help: 'remove a directory and everything in it' } },
  mv: {},
  chmod: {},
  exec: {
    'no-stdin': { type: 'boolean', short: 'n', help: "do not send stdin (the command's stdin is /dev/null)" },
    env: { type: 'string', multiple: true, value: 'NAME[=VALUE]', help: 'set a variable the agent allows (--allow-env), repeatable; NAME alone passes ours' },
    cwd: { type: 'string', value: 'DIR', help: "start in DIR (under the agent's --root)" },
    'max-output': { type: 'string', value: 'SIZE', help: 'most bytes of stdout, and of stderr, to receive, e.g. 64M (the rest is cut, like head -c)' },
    // Routed before this parser (cli.ts): commands/detached.ts and terminal/route.ts.
    detach: { type: 'boolean', help: 'start the command detached: print its id and return (ps, wait, kill, attach)' },
    tty: { type: 'boolean', short: 't', help: 'run on a terminal in the guest (-it like docker; see vmlink shell --help)' },
    interactive: { type: 'boolean', short: 'i', help: 'accepted for docker habits: stdin is always streamed' },
  },
  // Parsed by terminal/route.ts; listed here for help, ownership and "did you mean".
  shell: {
    env: { type: 'string', multiple: true, value: 'NAME[=VALUE]', help: 'set a variable the agent allows (--allow-env), repeatable; NAME alone passes ours' },
    cwd: { type: 'string', value: 'DIR', help: "start in DIR (under the agent's --root)" },
  },
  // Parsed by commands/detached.ts, which takes its options from here.
  ps: {},
  wait: {},
  kill: { signal: { type: 'string', short: 's', value: 'SIG', help: 'TERM (default), INT, KILL, HUP or QUIT, to the process group' } },
  attach: {
    'from-start': { type: 'boolean', help: 'replay from the oldest output the agent kept, not from where the last attach stopped' },
    'max-output': { type: 'string', value: 'SIZE', help: 'with --json: most bytes of stdout, and of stderr, to collect, e.g. 16M (default 64M; the rest is cut, like head -c)' },
  },
  forward: { 'max-active': { type: 'string', value: 'N', help: "forwards carried at once, more wait (default: the agent's room from its info)" } },
  'wait-port': {},
  bench: {
    rounds: { type: 'string', value: 'N', help: 'ping round trips (default 200)' },
    size: { type: 'string', value: 'MIB', help: 'bulk transfer size in MiB (default 32)' },
  },
};

/** node:util parseArgs's options for these option tables. */
export type ParseArgsOptions = Record<string, { type: 'boolean' | 'string'; multiple?: boolean; short?: string }>;
export function parseArgsOptions(tables: readonly Readonly<Record<string, OptionSpec>>[]): ParseArgsOptions {
  const out: ParseArgsOptions = {};
  for (const specs of tables) {
    for (const [name, spec] of Object.entries(specs)) {
      out[name] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}), ...(spec.short ? { short: spec.short } : {}) };
    }
  }
  return out;
}

/** Every option any command knows, for node:util parseArgs (ownership is checked after). */
export function allOptions(): ParseArgsOptions {
  return parseArgsOptions([COMMON_OPTIONS, GLOBAL_OPTIONS, ...COMMAND_NAMES.map((name) => COMMAND_OPTIONS[name])]);
}

type ParseToken = { kind: string; index: number; value?: unknown };
/** parseArgs tokens' positionals, split at `--`: the command line's own words and the remote command's. */
export function splitPositionals(tokens: readonly ParseToken[]): { positionals: string[]; afterDashDash: string[]; terminator: boolean } {
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  const positionals: string[] = [];
  const afterDashDash: string[] = [];
  for (const token of tokens) {
    if (token.kind !== 'positional') continue;
    if (terminator && token.index > terminator.index) afterDashDash.push(String(token.value));
    else positionals.push(String(token.value));
  }
  return { positionals, afterDashDash, terminator: terminator !== undefined };
}

/** The commands whose own option `name` is. */
export function ownersOf(name: string): CommandName[] {
  return COMMAND_NAMES.filter((command) => name in COMMAND_OPTIONS[command]);
}

/** Edit distance (insert, delete, substitute, swap of neighbours), for suggestions. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** The closest candidate, if it is close enough to be what was meant. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.max(1, Math.floor(input.length / 3));
  // A prefix of a long name is meant too (--rec for --recursive).
  if (best !== undefined && bestDistance <= allowed) return best;
  const prefixed = candidates.filter((c) => input.length >= 2 && c.startsWith(input));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** Help lines for a set of options. */
export function optionHelp(specs: Readonly<Record<string, OptionSpec>>): string {
  return Object.entries(specs)
    .map(([name, spec]) => {
      const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`;
      return flag.length <= 18 ? `  ${flag.padEnd(18)} ${spec.help}` : `  ${flag}\n  ${' '.repeat(18)} ${spec.help}`;
    })
    .join('\n');
}
