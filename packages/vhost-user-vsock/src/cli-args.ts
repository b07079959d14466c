import { VsockDeviceError, VsockDeviceErrorCode } from './errors.js';
import type { VsockDeviceOptions } from './options.js';

export interface CliArgs {
  help: boolean;
  vms: VsockDeviceOptions[];
}

export const USAGE = `Usage: vmlink-vsockd --socket PATH --uds-path PATH --guest-cid N
       vmlink-vsockd --vm guest-cid=3,socket=PATH,uds-path=PATH [--vm ...]

Serves a virtio-vsock device to QEMU (-device vhost-user-vsock-pci,chardev=...) on each
vhost-user socket; the host side is hybrid vsock on uds-path (CONNECT <port>\\n, and
<uds-path>_<port> for guest-initiated connections). Runs until SIGINT/SIGTERM.

Options (per VM, also as --vm keys): --buf-alloc BYTES, --max-connections N,
--seqpacket on|off (SOCK_SEQPACKET too; host clients at <uds-path>.seqpacket),
--credit-update-bytes BYTES, --tx-notify-batch N, --tx-notify-delay-us US,
--rx-buffers-per-read N, --tx-kick-defer-us US, --tx-kick-batch N,
--tx-stream-bytes BYTES (tuning; see the package README)`;

function bad(message: string): VsockDeviceError {
  return new VsockDeviceError(VsockDeviceErrorCode.BAD_ARGUMENT, message);
}

function integer(value: string, what: string): number {
  if (!/^\d+$/.test(value)) throw bad(`${what} must be a decimal integer, got '${value}'`);
  return Number(value);
}

// Integer tuning keys -> their createVsockDevice option.
const NUMERIC = {
  'buf-alloc': 'bufAlloc',
  'max-connections': 'maxConnections',
  'credit-update-bytes': 'creditUpdateBytes',
  'tx-notify-batch': 'txNotifyBatch',
  'tx-notify-delay-us': 'txNotifyDelayUs',
  'rx-buffers-per-read': 'rxBuffersPerRead',
  'tx-kick-defer-us': 'txKickDeferUs',
  'tx-kick-batch': 'txKickBatch',
  'tx-stream-bytes': 'txStreamBytes',
} as const satisfies Record<string, keyof VsockDeviceOptions>;
type Key = 'socket' | 'uds-path' | 'guest-cid' | 'seqpacket' | keyof typeof NUMERIC;
const KEYS: readonly Key[] = ['socket', 'uds-path', 'guest-cid', 'seqpacket', ...(Object.keys(NUMERIC) as (keyof typeof NUMERIC)[])];

function toOptions(fields: Map<Key, string>, where: string): VsockDeviceOptions {
  for (const required of ['socket', 'uds-path', 'guest-cid'] as const) {
    if (!fields.has(required)) throw bad(`${where}: '${required}' is missing`);
  }
  const options: VsockDeviceOptions = {
    socket: fields.get('socket')!,
    udsPath: fields.get('uds-path')!,
    guestCid: integer(fields.get('guest-cid')!, `${where}: guest-cid`),
  };
  if (fields.has('seqpacket')) {
    const value = fields.get('seqpacket')!;
    if (value !== 'on' && value !== 'off') throw bad(`${where}: seqpacket must be 'on' or 'off', got '${value}'`);
    options.seqpacket = value === 'on';
  }
  for (const [key, option] of Object.entries(NUMERIC) as [keyof typeof NUMERIC, (typeof NUMERIC)[keyof typeof NUMERIC]][]) {
    const value = fields.get(key);
    if (value !== undefined) options[option] = integer(value, `${where}: ${key}`);
  }
  return options;
}

/** `--vm guest-cid=3,socket=/a,uds-path=/b` (vhost-device-vsock's syntax). */
function parseVmGroup(group: string, index: number): VsockDeviceOptions {
  const where = `--vm #${index + 1}`;
  const fields = new Map<Key, string>();
  for (const part of group.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw bad(`${where}: '${part}' is not key=value`);
    const key = part.slice(0, eq) as Key;
    if (!KEYS.includes(key)) throw bad(`${where}: unknown key '${part.slice(0, eq)}' (known: ${KEYS.join(', ')})`);
    if (fields.has(key)) throw bad(`${where}: '${key}' given twice`);
    fields.set(key, part.slice(eq + 1));
  }
  return toOptions(fields, where);
}

/** Parses argv (without node and script). Pure: throws ERR_VMLINK_VSOCKD_BAD_ARGUMENT. */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  const single = new Map<Key, string>();
  const groups: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const value = argv[++i];
      if (value === undefined) throw bad(`${flag} needs a value`);
      return value;
    };
    if (flag === '--vm') {
      groups.push(takeValue());
      continue;
    }
    const key = flag.startsWith('--') ? (flag.slice(2) as Key) : undefined;
    if (key === undefined || !KEYS.includes(key)) throw bad(`unknown argument '${arg}'`);
    if (single.has(key)) throw bad(`--${key} given twice`);
    single.set(key, takeValue());
  }
  if (help) return { help, vms: [] };
  const vms = groups.map(parseVmGroup);
  if (single.size > 0) vms.unshift(toOptions(single, 'command line'));
  if (vms.length === 0) throw bad('no VM given: use --socket/--uds-path/--guest-cid or --vm');
  for (const [what, pick] of [
    ['socket', (o: VsockDeviceOptions) => o.socket],
    ['uds-path', (o: VsockDeviceOptions) => o.udsPath],
    ['guest-cid', (o: VsockDeviceOptions) => String(o.guestCid)],
  ] as const) {
    const seen = new Set<string>();
    for (const vm of vms) {
      const value = pick(vm);
      if (seen.has(value)) throw bad(`${what} '${value}' is given to two VMs`);
      seen.add(value);
    }
  }
  return { help, vms };
}
