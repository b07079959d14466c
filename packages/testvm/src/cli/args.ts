import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';

export const USAGE = `Usage:
  vmlink-testvm run [--share DIR]... [--port NAME]... [--with PROGRAM]... [--timeout S]
                    [--boot-timeout S] [--memory MiB] [--cpus N] [--cwd DIR] [--env K=V]...
                    [--read-only] -- CMD [ARGS...]
      Boot a throwaway guest, run CMD in it, print its output, exit with its exit code
      (2 when the guest hung, failed to boot or the input was bad). --timeout limits
      CMD (no limit by default), --boot-timeout the boot (default 120).
  vmlink-testvm info [--share DIR]... [--with PROGRAM]... [--boot-timeout S]
      Boot the guest and print its kernel release, CPUs, memory and loaded modules.
  vmlink-testvm doctor [--install] [--probe-kvm]
      List what the host lacks (packages, kernel, /dev/kvm) and the apt-get line to fix it;
      --install runs that line (as root).
`;

export function usageError(message: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_TESTVM_USAGE', `${message}\n\n${USAGE}`);
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
  command: string[];
}

function positiveNumber(flag: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw usageError(`--${flag} needs a positive ${integer ? 'integer' : 'number'}, got '${value}'`);
  }
  return n;
}

/** Splits at the first `--`: options before it, the guest command after it. */
export function parseRunArgs(argv: readonly string[], needsCommand: boolean): RunArgs {
  const dashes = argv.indexOf('--');
  const optionArgs = dashes < 0 ? [...argv] : argv.slice(0, dashes);
  const command = dashes < 0 ? [] : argv.slice(dashes + 1);
  let parsed;
  try {
    parsed = parseArgs({
      args: optionArgs,
      allowPositionals: false,
      options: {
        share: { type: 'string', multiple: true, default: [] },
        port: { type: 'string', multiple: true, default: [] },
        with: { type: 'string', multiple: true, default: [] },
        timeout: { type: 'string' },
        'boot-timeout': { type: 'string' },
        memory: { type: 'string' },
        cpus: { type: 'string' },
        cwd: { type: 'string' },
        env: { type: 'string', multiple: true, default: [] },
        'read-only': { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const { values } = parsed;
  if (needsCommand && command.length === 0) throw usageError('no command given: put it after --');
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`--env needs NAME=VALUE, got '${pair}'`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    share: values.share ?? [],
    port: values.port ?? [],
    with: values.with ?? [],
    timeoutSeconds: positiveNumber('timeout', values.timeout, false),
    bootTimeoutSeconds: positiveNumber('boot-timeout', values['boot-timeout'], false),
    memoryMiB: positiveNumber('memory', values.memory, true),
    cpus: positiveNumber('cpus', values.cpus, true),
    cwd: values.cwd,
    env,
    readOnly: values['read-only'] ?? false,
    command,
  };
}
