import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { describeAgentError, type PtySize } from '@vmlink/agent-protocol';
import { VmlinkError } from '@vmlink/errors';
import type { AgentClient } from '../agent-client.js';
import { exitCodeFor } from '../exit-codes.js';
import { writeWithBackpressure } from '../output.js';
import { connectAgent } from '../rpc-client.js';
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
 * out: the end, an error, a lost connection, SIGTERM/SIGHUP/SIGQUIT (then 128+N). The
 * agent is reached as by every other command (connectAgent).
 */
export async function runTerminalSession(spec: TerminalSpec, io: TerminalIo): Promise<number> {
  let client: AgentClient | undefined;
  let restore = (): void => undefined;
  const cleanups: (() => void)[] = [];
  let endedBySignal: number | undefined;
  try {
    if (!io.stdin.isTTY || typeof io.stdin.setRawMode !== 'function') {
      throw new VmlinkError('ERR_VMLINK_USAGE', 'a terminal session (-t, shell) needs a terminal on stdin; without one, use exec without -t');
    }
    const agent = await connectAgent(spec.uri, { timeoutMs: spec.timeoutMs, transportModules: spec.transports });
    client = agent;
    const input = new TerminalInput(() => io.stdin.resume());
    const request = {
      pty: { ...windowSize(io.stdout), term: terminalName(process.env['TERM']) },
      ...(Object.keys(spec.env).length > 0 ? { env: { ...spec.env } } : {}),
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
    };
    // Raw only once the agent accepted the command: a refusal is said on a normal terminal.
    const started = (): void => {
      const raw = enterRawMode(
        io.stdin,
        (signal) => {
          endedBySignal = osConstants.signals[signal];
          // At once, not close()'s graceful wait: the agent kills the remote session when its client goes away.
          agent.destroy();
        },
        { outputFd: io.stdout.isTTY ? (io.stdout as { fd?: number }).fd : undefined, termios: addonTermios() },
      );
      restore = raw.restore;
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
    };
    // A terminal has one stream: whatever comes goes to our terminal, in order, with backpressure.
    const exit = await agent.exec(spec.command, spec.args, (_stream, chunk) => writeWithBackpressure(io.stdout, chunk), {
      stdin: input,
      request,
      onStarted: started,
    });
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
    client?.destroy();
    if (endedBySignal !== undefined) process.exitCode = 128 + endedBySignal;
  }
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
  const message = (error as Error).message;
  const lost = code === 'ERR_VMLINK_CONNECTION_LOST' && !message.includes('lost') ? ` (connection to ${spec.uri} lost)` : '';
  stderr.write(`vmlink ${spec.verb} ${spec.uri}: ${words ? `${words}: ` : ''}${message}${lost} [${code ?? 'ERROR'}]\n`);
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
