import { parseArgs } from 'node:util';
import { VmlinkError } from '@vmlink/errors';
import { DEFAULT_GUEST_CID, MAX_GUEST_CID, MIN_GUEST_CID } from '../options.js';

export const USAGE = `Usage:
  vmlink-testvm run [--share DIR]... [--port NAME]... [--with PROGRAM]... [--timeout S]
                    [--boot-timeout S] [--memory MiB] [--cpus N] [--cwd DIR] [--env K=V]...
                    [--read-only] [--vsock [--guest-cid N]] -- CMD [ARGS...]
      Boot a throwaway guest, run CMD in it, print its output, exit with its exit code
      (2 when the guest hung, failed to boot or the input was bad). --timeout limits
      CMD (no limit by default), --boot-timeout the boot (default 120). --vsock adds a
      host<->guest vsock device (guest CID 3 or --guest-cid; needs @vmlink/vhost-user-vsock);
      its host socket is printed on stderr and, with VMLINK_TESTVM_VSOCK_FILE=path set,
      written there as JSON { udsPath, guestCid }.
  vmlink-testvm info [--share DIR]... [--with PROGRAM]... [--boot-timeout S] [--vsock]
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
  /** --vsock (or --guest-cid): the guest CID of the vsock device, else undefined. */
  vsockGuestCid: number | undefined;
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
        vsock: { type: 'boolean', default: false },
        'guest-cid': { type: 'string' },
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
  const guestCid = positiveNumber('guest-cid', values['guest-cid'], true);
  if (guestCid !== undefined && (guestCid < MIN_GUEST_CID || guestCid > MAX_GUEST_CID)) {
    throw usageError(`--guest-cid must be >= ${MIN_GUEST_CID} and <= ${MAX_GUEST_CID}, got '${values['guest-cid']}'`);
  }
  if (guestCid !== undefined && values.vsock !== true) throw usageError('--guest-cid needs --vsock');
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
    vsockGuestCid: values.vsock === true ? (guestCid ?? DEFAULT_GUEST_CID) : undefined,
    command,
  };
}
