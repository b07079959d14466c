import { constants as osConstants } from 'node:os';
import { ExecInputDecoder, ExecInputTag, type ExecExit, type PtySize } from '@vmlink/agent-protocol';
import type { FdStream, FdStreamBinding } from '@vmlink/native';
import { VmlinkError } from '@vmlink/errors';
import { AgentErrorCode, agentError } from '../errors.js';
import { childEnvironment, limitLifetime, type ClientSignal, type RunningCommand, type StartOptions, withTruncation } from '../methods/exec.js';
import type { ResolvedCommand } from '../policy/exec-policy.js';
import { describeValue } from '../policy/exec-policy.js';
import { OutputMeter } from './output-cap.js';
import { signalSession } from './session-kill.js';
import { loadPtyBinding, type PidExit, type PidWatcher, type PtyBinding } from './pty-binding.js';

const DEFAULT_DRAIN_MS = 1000;
/** One read of the master at most: what a client that does not read can make the agent hold per command. */
const READ_SIZE = 64 * 1024;
const TERM_NAME = /^[A-Za-z0-9._+-]{1,64}$/;

/** exec's `pty: { cols, rows, term? }`, checked; `term` becomes TERM (default xterm-256color). */
export function checkPtyParams(raw: unknown): (PtySize & { term: string }) | undefined {
  if (raw === undefined || raw === null || raw === false) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: pty must be { cols, rows, term? }, got ${describeValue(raw)}`);
  }
  const { cols, rows, term } = raw as Record<string, unknown>;
  const size = checkSize({ cols, rows }, 'exec: pty');
  if (term !== undefined && (typeof term !== 'string' || !TERM_NAME.test(term))) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: pty.term must be a terminal name ([A-Za-z0-9._+-], at most 64), got ${describeValue(term)}`);
  }
  return { ...size, term: (term as string | undefined) ?? 'xterm-256color' };
}

/** A window size: integers 1..65535 (what struct winsize holds). */
export function checkSize(raw: { cols: unknown; rows: unknown }, what: string): PtySize {
  for (const key of ['cols', 'rows'] as const) {
    const value = raw[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `${what}.${key} must be an integer in 1..65535, got ${describeValue(value)}`);
    }
  }
  return { cols: raw.cols as number, rows: raw.rows as number };
}

/**
 * What ends a terminal session besides its own exit: the request's `signal` only (its
 * client's connection gone, a cancel, the agent's shutdown), never `timeoutMs`. A session
 * is interactive (`vmlink shell`): --exec-timeout is the wall-clock limit of commands on
 * pipes, and a shell killed after 60 s is no shell. A client that dies closes its
 * connection, and that kills the session.
 */
export function terminalLifetime(options: Pick<StartOptions, 'signal' | 'timeoutMs'>): Pick<StartOptions, 'signal' | 'timeoutMs'> {
  return { signal: options.signal, timeoutMs: 0 };
}

/**
 * Starts an allowed command on a new pseudo-terminal (native/src/pty): its own session,
 * the terminal as its controlling tty and stdio, so the terminal's line discipline turns
 * a typed Ctrl-C into SIGINT for its foreground group. Same policy, env and cwd rules as
 * a command on pipes, but no time limit (terminalLifetime).
 */
export function startPtyCommand(command: ResolvedCommand, args: readonly string[], pty: PtySize & { term: string }, options: StartOptions): PtyCommand {
  const binding = loadPtyBinding();
  const env = childEnvironment(process.env, { ...options.env, TERM: pty.term });
  const spawned = binding.ptySpawn({
    file: command.path,
    args: [command.name, ...args],
    env: Object.entries(env)
      .filter((entry): entry is [string, string] => entry[1] !== undefined)
      .map(([k, v]) => `${k}=${v}`),
    cwd: options.cwd,
    cols: pty.cols,
    rows: pty.rows,
  });
  return new PtyCommand(binding, spawned.pid, spawned.master, options);
}

/**
 * A command on a terminal. Output is the master's bytes (STDOUT records), read only while
 * the previous chunk is being delivered to the client: a client that never reads leaves
 * the agent holding at most one chunk, and the command blocks on a full terminal. EIO on
 * the master is the normal end (every slave fd closed). The command is over when it
 * exits (reaped through a pidfd); then its group is killed and what is left in the
 * terminal is drained for up to a second.
 */
export class PtyCommand implements RunningCommand {
  private readonly stream: FdStream;
  private watcher: PidWatcher | undefined;
  private readonly exited: Promise<ExecExit>;
  private hasExited = false;
  private onChunk: ((chunk: Buffer) => void) | undefined;
  private onEnd: (() => void) | undefined;
  private ended = false;
  private collecting = false;
  /** Resolves a write waiting for the terminal, if the stream is closed under it (close drops its callback). */
  private pendingWrite: (() => void) | undefined;

  constructor(
    private readonly binding: PtyBinding & FdStreamBinding,
    private readonly childPid: number,
    private readonly master: number,
    private readonly options: StartOptions,
  ) {
    this.stream = new binding.FdStream(master, { readSize: READ_SIZE }, {
      onData: (chunk: Buffer) => this.onChunk?.(chunk),
      onEnd: () => this.finishReading(),
      // EIO: the last slave fd closed (the normal end of a terminal); anything else ends it too.
      onError: () => this.finishReading(),
    });
    this.exited = new Promise<ExecExit>((resolve) => {
      this.watcher = new binding.PidWatcher(childPid, (result: PidExit) => {
        this.hasExited = true;
        this.killGroup();
        resolve(exitOf(result));
      });
    });
    limitLifetime(this.exited, terminalLifetime(options), () => this.killGroup(), () => undefined);
    void this.exited.then(() => {
      // Nobody collects the output (the request was cancelled before its body began): the terminal goes now.
      if (!this.collecting) this.close();
    });
  }

  get pid(): number {
    return this.childPid;
  }

  get exitedAlready(): boolean {
    return this.hasExited;
  }

  /** The terminal's window size now (tests, logs). */
  get size(): PtySize {
    return this.binding.ptyGetSize(this.stream.fd);
  }

  /** Input records: DATA is typed into the terminal (flow-controlled), RESIZE sets its size. */
  async feedStdin(body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number> {
    const decoder = new ExecInputDecoder();
    let bytes = 0;
    for await (const chunk of body) {
      if (signal.aborted) throw signal.reason as Error;
      for (const record of decoder.push(chunk)) {
        if (this.stream.closed || this.hasExited) return bytes;
        if (record.tag === ExecInputTag.RESIZE) {
          this.resize(parseResize(record.data));
          continue;
        }
        bytes += record.data.length;
        await this.write(record.data);
      }
    }
    // The end of the input is the end of typing; the terminal stays (a shell exits on its own, or on Ctrl-D typed).
    return bytes;
  }

  /** TIOCSWINSZ; the foreground group gets SIGWINCH. */
  resize(size: PtySize): void {
    if (this.stream.closed) return;
    this.binding.ptyResize(this.stream.fd, size.cols, size.rows);
  }

  sendSignal(name: ClientSignal): void {
    if (this.hasExited) return;
    try {
      process.kill(-this.childPid, name);
    } catch {
      // ESRCH: the group is gone already.
    }
  }

  /**
   * SIGKILL to every group of the command's session (its shell's background jobs have
   * groups of their own); a process that started a session of its own is out of reach.
   */
  killGroup(): void {
    signalSession(this.childPid, 'SIGKILL');
  }

  async collect(onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>): Promise<ExecExit> {
    this.collecting = true;
    const meter = new OutputMeter(this.options.caps?.stdout ?? Number.MAX_SAFE_INTEGER);
    let failure: unknown;
    const drained = new Promise<void>((resolve) => {
      let delivering = false;
      this.onEnd = () => {
        if (!delivering) resolve();
      };
      this.onChunk = (chunk) => {
        const { keep, reached } = meter.take(chunk);
        if (reached) {
          // At the cap: nobody will read the rest, so the command must not wait for a reader.
          this.killGroup();
          this.finishReading();
        }
        if (keep.length === 0) return;
        delivering = true;
        this.stream.readStop();
        onOutput('stdout', keep).then(
          () => {
            delivering = false;
            if (this.ended) resolve();
            else this.stream.readStart();
          },
          (error: unknown) => {
            failure = error;
            this.killGroup();
            this.finishReading();
            resolve();
          },
        );
      };
      this.stream.readStart();
    });
    const result = await this.exited;
    const cut = setTimeout(() => this.finishReading(), this.options.drainMs ?? DEFAULT_DRAIN_MS);
    await drained;
    clearTimeout(cut);
    this.close();
    if (failure !== undefined) throw failure;
    return withTruncation(result, { stdout: meter, stderr: new OutputMeter(Number.MAX_SAFE_INTEGER) });
  }

  /** Closes the terminal and stops watching the child (a client gone before collect()). */
  close(): void {
    this.finishReading();
    this.stream.close();
    this.watcher?.unref();
    this.pendingWrite?.();
    if (!this.hasExited) this.killGroup();
  }

  private finishReading(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.stream.closed) this.stream.readStop();
    this.onEnd?.();
  }

  private write(data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const settle = (error: Error | null): void => {
        if (done) return;
        done = true;
        this.pendingWrite = undefined;
        // EIO/EPIPE: the terminal is gone; the command's end is reported through the output.
        if (error && (error as NodeJS.ErrnoException).code !== 'EIO' && (error as NodeJS.ErrnoException).code !== 'EPIPE') reject(error);
        else resolve();
      };
      try {
        if (this.stream.write(data, settle)) settle(null);
        else this.pendingWrite = () => settle(null);
      } catch (error) {
        settle(error as Error);
      }
    });
  }
}

function parseResize(data: Buffer): PtySize {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    throw new VmlinkError('ERR_VMLINK_PROTOCOL', `exec input: a resize record that is not JSON: ${describeValue(data.toString('utf8'))}`);
  }
  const size = (parsed ?? {}) as { cols?: unknown; rows?: unknown };
  return checkSize({ cols: size.cols, rows: size.rows }, 'exec input: resize');
}

function exitOf(result: PidExit): ExecExit {
  if (result.error) return { exitCode: null, signal: null };
  if (typeof result.signal === 'number') {
    const name = Object.entries(osConstants.signals).find(([, n]) => n === result.signal)?.[0] ?? `SIG${result.signal}`;
    return { exitCode: null, signal: name };
  }
  return { exitCode: result.code ?? null, signal: null };
}
