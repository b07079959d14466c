/**
 * Shared by the agent tests: a real vmlink-guest process (built dist/cli.js) on a real
 * Unix socket, RPC clients, and a reader for exec's record body.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { RpcPeer } from '@vmlink/rpc';

export const GUEST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly socketPath: string;
  /** Everything the agent logged so far. */
  log(): string;
  /** Log lines (JSON agents only) parsed. */
  lines(): Record<string, unknown>[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Waits (generously) until the log matches. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Start the agent under `ulimit -n N`. */
  readonly nofile?: number;
  /** Do not wait for 'ready' (for agents expected to fail). */
  readonly noWait?: boolean;
}

/** Starts vmlink-guest listening on unix:SOCKET with --json plus `args`. */
export async function startAgent(socketPath: string, args: readonly string[], options: StartOptions = {}): Promise<AgentProcess> {
  const argv = [GUEST_CLI, '--listen', `unix:${socketPath}`, '--json', ...args];
  const child =
    options.nofile === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: options.env ?? process.env, cwd: options.cwd })
      : spawn('sh', ['-c', `ulimit -n ${options.nofile} && exec "$0" "$@"`, process.execPath, ...argv], {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: options.env ?? process.env,
          cwd: options.cwd,
        });
  let log = '';
  const waiters = new Set<() => void>();
  child.stderr?.setEncoding('utf8').on('data', (t: string) => {
    log += t;
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const agent: AgentProcess = {
    child,
    socketPath,
    log: () => log,
    lines: () =>
      log
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    waitForLog: (pattern, timeoutMs = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(log)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the agent log never matched ${pattern}:\n${log.slice(-4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (!options.noWait) {
    await Promise.race([
      agent.waitForLog(/"msg":"ready"/),
      exited.then((code) => {
        throw new Error(`agent exited ${code} before ready:\n${log}`);
      }),
    ]);
  }
  return agent;
}

export function openSocket(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export async function rpcClient(socketPath: string): Promise<RpcPeer> {
  const peer = new RpcPeer(await openSocket(socketPath));
  peer.on('warning', () => undefined);
  return peer;
}

/** One call on a fresh connection; the error's code (or 'OK'). */
export async function callOnce(socketPath: string, method: string, params: unknown = {}): Promise<{ ok?: unknown; code?: string; message?: string }> {
  const peer = await rpcClient(socketPath);
  try {
    return { ok: await peer.call(method, params, { timeout: 30_000 }) };
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message };
  } finally {
    peer.destroy();
  }
}

/**
 * The first ERROR frame without an id the agent sends before closing (why it closed):
 * resolves with its code, or undefined if the connection closed without one.
 */
export function closeReason(peer: RpcPeer): Promise<string | undefined> {
  return new Promise((resolve) => {
    let reason: string | undefined;
    peer.on('warning', (warning) => {
      if (warning.remote) reason ??= warning.code;
    });
    peer.once('close', () => resolve(reason));
  });
}

export interface ExecRecord {
  readonly tag: number;
  readonly data: Buffer;
}

/** Reads exec's record body (u8 tag, u32 BE length, bytes), calling `onRecord` as each arrives. */
export async function readExecRecords(body: Readable, onRecord?: (record: ExecRecord) => void): Promise<ExecRecord[]> {
  const records: ExecRecord[] = [];
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = Buffer.concat([pending, chunk as Buffer]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      const record = { tag: pending[0] as number, data: pending.subarray(5, 5 + length) };
      pending = pending.subarray(5 + length);
      records.push(record);
      onRecord?.(record);
    }
  }
  return records;
}

/** True while `pid` exists and is not a zombie (a zombie has already died). */
export async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Waits until `check()` is true; fails after a generous deadline (liveness, not speed). */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}
