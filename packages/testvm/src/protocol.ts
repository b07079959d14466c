/** The JSON-lines protocol between the host and the guest runner (assets/guest-runner.cjs). */

export interface GuestInfo {
  /** `uname -r` of the guest kernel. */
  release: string;
  cpus: number;
  memoryBytes: number;
  /** Loaded kernel modules, from /proc/modules. */
  modules: string[];
  /** Guest uptime when the runner became ready. */
  uptimeMs: number;
  /** The guest node's `process.arch` ('x64', 'arm64'). */
  arch: string;
}

export type HostMessage =
  | { type: 'config'; shares: { tag: string; path: string; readOnly: boolean }[]; ports: string[]; outputCap: number }
  | { type: 'run'; id: number; cmd: string; args: string[]; cwd: string; env: Record<string, string>; input?: string }
  | { type: 'kill'; id: number }
  | { type: 'shutdown' };

export type GuestMessage =
  | ({ type: 'ready' } & GuestInfo)
  | { type: 'out'; id: number; stream: 'stdout' | 'stderr'; data: string }
  | { type: 'exit'; id: number; exitCode: number; signal: string | null; truncated: boolean; spawnError?: string; failure?: 'bad-cwd' }
  | { type: 'fatal'; message: string }
  | { type: 'bye' };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Checks the shape just enough that the host never trusts a malformed line. */
export function parseGuestMessage(line: string): GuestMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value.type !== 'string') return undefined;
  switch (value.type) {
    case 'ready':
      if (typeof value.release !== 'string') return undefined;
      return {
        type: 'ready',
        release: value.release,
        cpus: Number(value.cpus),
        memoryBytes: Number(value.memoryBytes),
        modules: Array.isArray(value.modules) ? value.modules.map(String) : [],
        uptimeMs: Number(value.uptimeMs),
        arch: typeof value.arch === 'string' ? value.arch : 'unknown',
      };
    case 'out':
      return typeof value.id === 'number' && typeof value.data === 'string' && (value.stream === 'stdout' || value.stream === 'stderr')
        ? (value as GuestMessage)
        : undefined;
    case 'exit':
      return typeof value.id === 'number' && typeof value.exitCode === 'number' ? (value as GuestMessage) : undefined;
    case 'fatal':
      return typeof value.message === 'string' ? (value as GuestMessage) : undefined;
    case 'bye':
      return { type: 'bye' };
    default:
      return undefined;
  }
}
