/**
 * Detached processes from the CLI: `vmlink exec --detach`, `ps`, `wait`, `kill`, `attach`
 * (the agent's detached.* methods, @vmlink/agent-protocol's detached.ts). They parse their
 * own arguments (the common options included) and reach the agent through connectAgent
 * (--wait, the silence watchdog, refusals and lost connections in the CLI's terms) like
 * the other commands.
 */
import { constants as osConstants } from 'node:os';
import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import {
  DetachedRecordTag,
  describeAgentError,
  type DetachedAttachResult,
  type DetachedGap,
  type DetachedProcessInfo,
  type DetachedSignal,
  type ExecResult,
} from '@vmlink/agent-protocol';
import { byteSize } from '../byte-size.js';
import { ExitCode, exitCodeFor } from '../exit-codes.js';
import { COMMAND_OPTIONS, COMMON_OPTIONS, DEFAULT_TIMEOUT_MS, didYouMean, optionHelp, parseArgsOptions, splitPositionals, type OptionSpec } from '../options-spec.js';
import { type CliOutput, printJson, processOutput, writeWithBackpressure } from '../output.js';
import { parseDuration } from './forward.js';
import type { AgentClient } from '../agent-client.js';
import { connectAgent } from '../rpc-client.js';

export const DETACHED_COMMANDS = ['ps', 'wait', 'kill', 'attach'] as const;
type DetachedCommand = (typeof DETACHED_COMMANDS)[number] | 'exec';

/** Our commands' common options: the CLI's. */
const COMMON: Readonly<Record<string, OptionSpec>> = COMMON_OPTIONS;

/** Their options are declared with the CLI's (options-spec.ts): one definition each. */
const OWN_OPTIONS: Readonly<Record<DetachedCommand, Readonly<Record<string, OptionSpec>>>> = {
  exec: {
    detach: COMMAND_OPTIONS.exec['detach'] as OptionSpec,
    'no-stdin': { type: 'boolean', short: 'n', help: 'accepted for symmetry: a detached command always has /dev/null as stdin' },
  },
  ps: COMMAND_OPTIONS.ps,
  wait: COMMAND_OPTIONS.wait,
  kill: COMMAND_OPTIONS.kill,
  attach: COMMAND_OPTIONS.attach,
};

const USAGE: Readonly<Record<DetachedCommand, string>> = {
  exec: `Usage: vmlink exec --detach URI -- CMD [ARGS...]

Starts CMD on the agent detached (it must be in the agent's --allow-exec; stdin is
/dev/null) and prints its id. It keeps running when we disconnect; the agent keeps the
last output of each stream (--detached-output, 1 MiB by default) and counts what it drops.`,
  ps: `Usage: vmlink ps URI [--json]

Lists the agent's detached processes: id, pid, state, exit status, start time, and per
stream the bytes kept / dropped, then the command.`,
  wait: `Usage: vmlink wait URI ID [--timeout 30s]

Waits until the detached process ID exits and exits with its exit status (128+N for
signal N). With --timeout, gives up after that long (exit 75); without, waits as long as it takes.`,
  kill: `Usage: vmlink kill URI ID [--signal TERM|INT|KILL|HUP|QUIT]

Sends the signal (default TERM) to the process group of the detached process ID.`,
  attach: `Usage: vmlink attach URI ID [--from-start] [--json [--max-output SIZE]]

Streams the output of the detached process ID: what the agent kept from where the last
attach stopped (--from-start: from the oldest byte kept), then live output until it
exits; exits with its exit status. Says on stderr how many bytes were dropped before it
could read them. Ctrl-C leaves the process running; attach again to continue. --json
collects the output and prints it with the exit status once the process exited, at most
--max-output bytes per stream (default 64M; the rest is cut and said in 'truncated').`,
};

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Parsed {
  readonly command: DetachedCommand;
  readonly positionals: string[];
  readonly afterDashDash: string[];
  readonly values: Values;
}

function usage(message: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_USAGE', message);
}

/** Which of our commands `argv` is, if any: ps/wait/kill/attach, or exec with --detach. */
function classify(argv: readonly string[]): Parsed | undefined {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], allowPositionals: true, strict: false, tokens: true, options: parseArgsOptions([COMMON_OPTIONS, ...Object.values(OWN_OPTIONS)]) });
  } catch {
    return undefined; // the main parser will say what is wrong
  }
  const { positionals, afterDashDash } = splitPositionals(parsed.tokens ?? []);
  const [name, ...rest] = positionals;
  const values = parsed.values as Values;
  if (name === 'exec' && values['detach'] === true) return { command: 'exec', positionals: rest, afterDashDash, values };
  if (name !== undefined && (DETACHED_COMMANDS as readonly string[]).includes(name)) {
    return { command: name as DetachedCommand, positionals: rest, afterDashDash, values };
  }
  return undefined;
}

/** Options given that `command` does not take: a usage error with a suggestion. */
function checkOptions(argv: readonly string[], command: DetachedCommand): void {
  const mine = { ...COMMON, ...OWN_OPTIONS[command] };
  const shorts = new Map(Object.entries(mine).flatMap(([name, spec]) => (spec.short ? [[spec.short, name] as const] : [])));
  for (const arg of argv) {
    if (arg === '--') break;
    if (!arg.startsWith('-') || arg === '-') continue;
    const name = arg.startsWith('--') ? (arg.slice(2).split('=')[0] as string) : shorts.get(arg.slice(1, 2));
    if (name !== undefined && name in mine) continue;
    const shown = arg.split('=')[0] as string;
    const guess = name === undefined ? undefined : didYouMean(name, Object.keys(mine));
    throw usage(`${command === 'exec' ? 'exec --detach' : command}: unknown option '${shown}'${guess ? ` (did you mean '--${guess}'?)` : ''}`);
  }
}

/** `vmlink COMMAND --help` (and `vmlink help COMMAND`) of ps, wait, kill, attach, exec --detach. */
export function detachedHelp(command: DetachedCommand): string {
  const own = optionHelp(OWN_OPTIONS[command]);
  return `${USAGE[command]}\n\n${own ? `Options:\n${own}\n\n` : ''}Common options:\n${optionHelp(COMMON)}`;
}

/**
 * Runs `argv` if it is one of the detached-process commands and returns its exit code;
 * undefined when it is not (the caller runs the main CLI).
 */
export function runDetachedCli(argv: readonly string[], out: CliOutput = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> | undefined {
  const parsed = classify(argv);
  if (!parsed) return undefined;
  return runParsed(argv, parsed, out, env);
}

async function runParsed(argv: readonly string[], parsed: Parsed, out: CliOutput, env: NodeJS.ProcessEnv): Promise<number> {
  const { command, values } = parsed;
  const label = command === 'exec' ? 'exec --detach' : command;
  if (values['help'] === true) {
    out.stdout.write(`${detachedHelp(command)}\n`);
    return ExitCode.OK;
  }
  let uri = '';
  let plan: () => Promise<number>;
  let session: AgentClient | undefined;
  try {
    checkOptions(argv, command);
    const rest = [...parsed.positionals];
    const explicitUri = typeof values['uri'] === 'string' ? values['uri'] : undefined;
    const takenUri = explicitUri ?? rest.shift();
    if (takenUri === undefined) throw usage(`${label} needs a URI (e.g. unix:/run/vmlink.sock)`);
    uri = takenUri;
    const timeoutText = typeof values['timeout'] === 'string' ? values['timeout'] : undefined;
    const timeoutMs = timeoutText === undefined ? undefined : parseDuration(timeoutText);
    if (timeoutText !== undefined && timeoutMs === undefined) throw usage(`--timeout must be a duration like 500ms, 30s, 2m or ms, got '${timeoutText}'`);
    const json = values['json'] === true;
    const transports = [...transportsFromEnv(env), ...(Array.isArray(values['transport']) ? values['transport'] : []).filter((v): v is string => typeof v === 'string')];
    if (command !== 'exec' && parsed.afterDashDash.length > 0) throw usage(`${command}: '--' is only for exec`);
    const takeId = (): string => {
      const id = rest.shift();
      if (id === undefined) throw usage(`${command} needs the ID that 'vmlink exec --detach' printed`);
      return id;
    };
    const noMore = (): void => {
      if (rest.length > 0) throw usage(`${label}: unexpected argument '${rest[0]}'`);
    };
    const wait = values['wait'] === true;
    const connect = async (): Promise<AgentClient> => (session = await connectAgent(uri, { timeoutMs: timeoutMs ?? DEFAULT_TIMEOUT_MS, wait, transportModules: transports }));
    switch (command) {
      case 'exec': {
        noMore();
        const [cmd, ...args] = parsed.afterDashDash;
        if (cmd === undefined) throw usage(`exec --detach needs '-- CMD [ARGS...]'`);
        plan = async () => startDetached(await connect(), cmd, args, json, out);
        break;
      }
      case 'ps':
        noMore();
        plan = async () => listDetached(await connect(), json, out);
        break;
      case 'wait': {
        const id = takeId();
        noMore();
        plan = async () => waitDetached(await connect(), id, timeoutMs, json, out);
        break;
      }
      case 'kill': {
        const id = takeId();
        noMore();
        const signal = parseSignal(values['signal']);
        plan = async () => killDetached(await connect(), id, signal, json, out);
        break;
      }
      case 'attach': {
        const id = takeId();
        noMore();
        const maxText = typeof values['max-output'] === 'string' ? values['max-output'] : undefined;
        if (maxText !== undefined && !json) throw usage('attach: --max-output is for --json (without it, output is written out as it comes, nothing is collected)');
        const maxOutput = maxText === undefined ? ATTACH_JSON_MAX_OUTPUT : byteSize(maxText);
        if (maxOutput === undefined) throw usage(`--max-output must be a size like 64M or 1048576, got '${maxText}'`);
        plan = async () => attachDetached(await connect(), id, { fromStart: values['from-start'] === true, json, maxOutput }, out);
        break;
      }
    }
  } catch (error) {
    out.stderr.write(`vmlink: ${(error as Error).message}\nTry 'vmlink ${command} --help'.\n`);
    return ExitCode.USAGE;
  }
  try {
    return await plan();
  } catch (error) {
    // connectAgent and the client's calls already speak the CLI's codes.
    const translated = error as Error;
    const code = (translated as { code?: unknown }).code;
    const codeText = typeof code === 'string' ? code : undefined;
    const words = describeAgentError(codeText);
    out.stderr.write(`vmlink ${label} ${uri}: ${words ? `${words}: ` : ''}${translated.message} [${codeText ?? 'ERROR'}]\n`);
    return detachedExitCode(command, codeText);
  } finally {
    await session?.close();
  }
}

/** The CLI's exit codes (exit-codes.ts: unknown id 66, limit 75, disabled 77); exec --detach of a missing / not executable command 127 / 126. */
export function detachedExitCode(command: DetachedCommand, code: string | undefined): number {
  // Like a shell (and vmlink exec): an allowed command not installed / not executable.
  if (command === 'exec' && code === 'ENOENT') return 127;
  if (command === 'exec' && code === 'EACCES') return 126;
  return exitCodeFor(code);
}

const SIGNAL_NAMES: Readonly<Record<string, DetachedSignal>> = { TERM: 'SIGTERM', INT: 'SIGINT', KILL: 'SIGKILL', HUP: 'SIGHUP', QUIT: 'SIGQUIT' };

function parseSignal(raw: unknown): DetachedSignal {
  if (raw === undefined) return 'SIGTERM';
  const text = typeof raw === 'string' ? raw.toUpperCase().replace(/^SIG/, '') : '';
  const signal = SIGNAL_NAMES[text];
  if (!signal) throw usage(`--signal must be one of ${Object.keys(SIGNAL_NAMES).join(', ')}, got '${String(raw)}'`);
  return signal;
}

function transportsFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env['VMLINK_TRANSPORTS'] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
}

/** What a process's exit status is as our exit code (128+N for signal N, like a shell). */
export function statusOf(result: Pick<ExecResult, 'exitCode' | 'signal'>): number {
  if (result.exitCode !== null) return result.exitCode;
  const n = result.signal === null ? undefined : osConstants.signals[result.signal as keyof typeof osConstants.signals];
  return 128 + (n ?? 0);
}


async function startDetached(session: AgentClient, command: string, args: string[], json: boolean, out: CliOutput): Promise<number> {
  const info = await session.detached('detached.start', { command, args });
  if (json) printJson(out, info);
  else out.stdout.write(`${info.id}\n`);
  return ExitCode.OK;
}

async function listDetached(session: AgentClient, json: boolean, out: CliOutput): Promise<number> {
  const list = await session.detached('detached.list', {});
  if (json) {
    printJson(out, list);
    return ExitCode.OK;
  }
  out.stdout.write(formatPs(list.processes));
  return ExitCode.OK;
}

/** `ps` as a table: one line per process, the command last (it may contain spaces). */
export function formatPs(processes: readonly DetachedProcessInfo[], now = Date.now()): string {
  const header = ['ID', 'PID', 'STATE', 'EXIT', 'STARTED', 'STDOUT KEPT/DROPPED', 'STDERR KEPT/DROPPED', 'COMMAND'];
  const rows = processes.map((p) => [
    p.id,
    String(p.pid),
    p.state,
    p.state === 'running' ? '-' : p.exitCode !== null ? String(p.exitCode) : (p.signal ?? '?'),
    formatStarted(p.startedAt, now),
    `${humanBytes(p.stdout.kept)}/${humanBytes(p.stdout.dropped)}`,
    `${humanBytes(p.stderr.kept)}/${humanBytes(p.stderr.dropped)}`,
    [p.command, ...p.args].map(quoteArg).join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  return `${[header, ...rows].map(line).join('\n')}\n`;
}

function formatStarted(ms: number, now: number): string {
  const iso = new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
  const ago = Math.max(0, Math.round((now - ms) / 1000));
  return `${iso} (${ago < 120 ? `${ago}s` : ago < 7200 ? `${Math.round(ago / 60)}m` : `${Math.round(ago / 3600)}h`} ago)`;
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)}K`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)}M`;
  return `${(n / 1024 ** 3).toFixed(1)}G`;
}

function quoteArg(arg: string): string {
  return /^[\w./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

async function waitDetached(session: AgentClient, id: string, timeoutMs: number | undefined, json: boolean, out: CliOutput): Promise<number> {
  const info = await session.detached('detached.wait', timeoutMs === undefined ? { id } : { id, timeoutMs });
  if (json) printJson(out, info);
  if (info.state === 'running') {
    out.stderr.write(`vmlink wait ${session.uri}: ${id} is still running after ${timeoutMs} ms (--timeout)\n`);
    return ExitCode.TIMEOUT;
  }
  return statusOf(info);
}

async function killDetached(session: AgentClient, id: string, signal: DetachedSignal, json: boolean, out: CliOutput): Promise<number> {
  const result = await session.detached('detached.kill', { id, signal });
  if (json) printJson(out, result);
  else if (!result.delivered) out.stderr.write(`vmlink kill ${session.uri}: ${id} had exited already; nothing sent\n`);
  return ExitCode.OK;
}

/** What `attach --json` collects per stream at most by default: a detached process may write without end. */
const ATTACH_JSON_MAX_OUTPUT = 64 * 1024 * 1024;

async function attachDetached(session: AgentClient, id: string, options: { fromStart: boolean; json: boolean; maxOutput: number }, out: CliOutput): Promise<number> {
  const { fromStart, json, maxOutput } = options;
  const collected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const collectedBytes = { stdout: 0, stderr: 0 };
  const truncated: { stdout?: number; stderr?: number } = {};
  const lost = { stdout: 0, stderr: 0 };
  let exit: ExecResult | undefined;
  const onStarted = (started: DetachedAttachResult): void => {
    Object.assign(lost, started.lost);
    for (const stream of ['stdout', 'stderr'] as const) {
      if (lost[stream] > 0) out.stderr.write(`vmlink attach: ${lost[stream]} bytes of ${stream} were dropped before this attach (the agent keeps the last ${humanBytes(started.process[stream].kept)} it has)\n`);
    }
  };
  await session.attach(
    fromStart ? { id, fromStart } : { id },
    onStarted,
    async (record) => {
      if (record.tag === DetachedRecordTag.EXIT) {
        exit = JSON.parse(record.data.toString('utf8')) as ExecResult;
        // Printed here, before the agent hears it was all written out (writtenAtExit).
        if (json) {
          printJson(out, {
            id,
            exitCode: exit.exitCode,
            signal: exit.signal,
            stdout: Buffer.concat(collected.stdout).toString('utf8'),
            stderr: Buffer.concat(collected.stderr).toString('utf8'),
            lost,
            ...(truncated.stdout !== undefined || truncated.stderr !== undefined ? { truncated } : {}),
          });
        }
      } else if (record.tag === DetachedRecordTag.GAP) {
        const gap = JSON.parse(record.data.toString('utf8')) as DetachedGap;
        lost[gap.stream] += gap.bytes;
        if (!json) out.stderr.write(`\nvmlink attach: ${gap.bytes} bytes of ${gap.stream} were dropped while we were reading too slowly\n`);
      } else {
        const stream = record.tag === DetachedRecordTag.STDERR ? 'stderr' : 'stdout';
        if (!json) await writeWithBackpressure(out[stream], record.data);
        else {
          // Bounded like exec's --max-output: the first maxOutput bytes, the rest cut and said.
          const room = maxOutput - collectedBytes[stream];
          if (room < record.data.length) truncated[stream] = maxOutput;
          if (room > 0) {
            const kept = record.data.subarray(0, room);
            collected[stream].push(Buffer.from(kept));
            collectedBytes[stream] += kept.length;
          }
        }
      }
    },
    { writtenAtExit: json },
  );
  if (!exit) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `detached.attach on ${session.uri}: the output ended without an exit status`);
  return statusOf(exit);
}
