import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { ExecRecordDecoder, ExecRecordTag, describeAgentError, type ExecExit, type PtySize } from '@vmlink/agent-protocol';
import { VmlinkError } from '@vmlink/errors';
import { RpcPeer } from '@vmlink/rpc';
import { loadInstalledTransports, type Connection } from '@vmlink/transport';
import { exitCodeFor } from '../exit-codes.js';
import { TerminalInput } from './input-queue.js';
import { addonTermios } from './output-modes.js';
import { enterRawMode, type RawCapable } from './raw-mode.js';

/** A remote command on a terminal: `vmlink exec -t` and `vmlink shell`. */
export interface TerminalSpec {
  /** How the CLI names the command in messages (`exec`, `shell`). */
  readonly verb: string;
  readonly uri: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string | undefined;
  readonly timeoutMs: number;
  readonly transports: readonly string[];
}

export interface TerminalIo {
  readonly stdin: Readable & RawCapable;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WritableStream;
}

const DEFAULT_SIZE: PtySize = { cols: 80, rows: 24 };

/** The window size to announce: the terminal's own, 80x24 when output is not a terminal. */
export function windowSize(stdout: { isTTY?: boolean; columns?: number; rows?: number }): PtySize {
  if (!stdout.isTTY || !stdout.columns || !stdout.rows) return DEFAULT_SIZE;
  return { cols: Math.min(stdout.columns, 65535), rows: Math.min(stdout.rows, 65535) };
}

/**
 * Runs the command on a terminal in the guest: our terminal raw (every key, Ctrl-C
 * included, travels as bytes, so the guest terminal's line discipline turns Ctrl-C into
 * SIGINT for its foreground group), window size at start and on every SIGWINCH, output
 * written as it comes (flow-controlled both ways). Returns the remote exit status (128+N
 * for signal N), or the CLI's code for a failure. Our terminal is restored on every way
 * out: the end, an error, a lost connection, SIGTERM/SIGHUP/SIGQUIT (then 128+N).
 */
export async function runTerminalSession(spec: TerminalSpec, io: TerminalIo): Promise<number> {
  let connection: Connection | undefined;
  let rpc: RpcPeer | undefined;
  let restore = (): void => undefined;
  const cleanups: (() => void)[] = [];
  let endedBySignal: number | undefined;
  try {
    if (!io.stdin.isTTY || typeof io.stdin.setRawMode !== 'function') {
      throw new VmlinkError('ERR_VMLINK_USAGE', 'a terminal session (-t, shell) needs a terminal on stdin; without one, use exec without -t');
    }
    const { transports } = await loadInstalledTransports({ plugins: [...spec.transports] });
    try {
      connection = await transports.dial(spec.uri, { timeout: spec.timeoutMs });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new VmlinkError(code === 'ETIMEDOUT' ? 'ERR_VMLINK_TIMEOUT' : 'ERR_VMLINK_UNREACHABLE', `cannot connect to ${spec.uri}: ${(error as Error).message}`, { cause: error });
    }
    connection.on('error', () => undefined);
    rpc = new RpcPeer(connection);
    const size = windowSize(io.stdout);
    const params = {
      command: spec.command,
      args: [...spec.args],
      stdin: true,
      pty: { ...size, term: terminalName(process.env['TERM']) },
      ...(Object.keys(spec.env).length > 0 ? { env: spec.env } : {}),
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
    };
    const { result, body } = await rpc.request('exec', params);
    const id = (result as { id?: unknown }).id;
    if (!body || typeof id !== 'string') throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec on ${spec.uri}: the reply has no id or no body`);

    const raw = enterRawMode(
      io.stdin,
      (signal) => {
        endedBySignal = osConstants.signals[signal];
        // The agent kills the remote group when its client goes away.
        connection?.destroy();
        body.destroy();
      },
      { outputFd: io.stdout.isTTY ? (io.stdout as { fd?: number }).fd : undefined, termios: addonTermios() },
    );
    restore = raw.restore;

    const input = new TerminalInput(() => io.stdin.resume());
    const onKeys = (chunk: Buffer): void => {
      if (!input.type(chunk)) io.stdin.pause();
    };
    const onResize = (): void => input.resize(windowSize(io.stdout));
    io.stdin.on('data', onKeys);
    io.stdout.on('resize', onResize);
    cleanups.push(() => {
      io.stdin.off('data', onKeys);
      io.stdout.off('resize', onResize);
      io.stdin.pause();
      input.end();
    });
    io.stdin.resume();
    void rpc.call('exec.stdin', { id }, { body: input }).catch(() => undefined);

    const exit = await readOutput(body, io.stdout, spec.uri);
    restore();
    if (exit.truncated) {
      io.stderr.write(`vmlink ${spec.verb}: output cut at ${exit.truncated.stdout ?? exit.truncated.stderr} bytes (the agent's --exec-max-output or the requested cap)\r\n`);
    }
    return exit.exitCode ?? 128 + (signalNumber(exit.signal) ?? 0);
  } catch (error) {
    restore();
    if (endedBySignal !== undefined) return 128 + endedBySignal;
    return reportFailure(spec, error, io.stderr);
  } finally {
    restore();
    for (const cleanup of cleanups) cleanup();
    if (rpc && !rpc.closed) rpc.destroy();
    connection?.destroy();
    if (endedBySignal !== undefined) process.exitCode = 128 + endedBySignal;
  }
}

/** Output records to our terminal, with backpressure; the EXIT record ends it. */
async function readOutput(body: Readable, stdout: NodeJS.WritableStream, uri: string): Promise<ExecExit> {
  const decoder = new ExecRecordDecoder();
  let exit: ExecExit | undefined;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    for (const record of decoder.push(chunk)) {
      if (record.tag === ExecRecordTag.EXIT) exit = JSON.parse(record.data.toString('utf8')) as ExecExit;
      else if (!stdout.write(record.data)) await new Promise<void>((resolve) => stdout.once('drain', resolve));
    }
  }
  if (!exit) throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec on ${uri}: the output ended without an exit status`);
  return exit;
}

const RPC_CODES: Readonly<Record<string, string>> = {
  ERR_VMLINK_RPC_CLOSED: 'ERR_VMLINK_CONNECTION_LOST',
  ECONNRESET: 'ERR_VMLINK_CONNECTION_LOST',
  EPIPE: 'ERR_VMLINK_CONNECTION_LOST',
  ERR_VMLINK_RPC_UNKNOWN_METHOD: 'ERR_VMLINK_PROTOCOL',
  ERR_VMLINK_RPC_MALFORMED_FRAME: 'ERR_VMLINK_PROTOCOL',
};

/** The failure in words, as the other commands print it, and its exit code. */
function reportFailure(spec: TerminalSpec, error: unknown, stderr: NodeJS.WritableStream): number {
  const raw = (error as { code?: unknown }).code;
  const code = typeof raw === 'string' ? (RPC_CODES[raw] ?? raw) : undefined;
  const words = describeAgentError(code);
  const lost = code === 'ERR_VMLINK_CONNECTION_LOST' ? ` (connection to ${spec.uri} lost)` : '';
  stderr.write(`vmlink ${spec.verb} ${spec.uri}: ${words ? `${words}: ` : ''}${(error as Error).message}${lost} [${code ?? 'ERROR'}]\n`);
  if (code === 'ENOENT') return 127;
  if (code === 'EACCES') return 126;
  return exitCodeFor(code);
}

/** TERM for the guest: ours when it is a plain terminal name, else xterm-256color. */
export function terminalName(term: string | undefined): string {
  return term !== undefined && /^[A-Za-z0-9._+-]{1,64}$/.test(term) ? term : 'xterm-256color';
}

function signalNumber(name: string | null): number | undefined {
  if (name === null) return undefined;
  return osConstants.signals[name as keyof typeof osConstants.signals];
}
