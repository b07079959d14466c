import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { ExecExit } from '@vmlink/agent-protocol';
import type { Readable } from 'node:stream';
import { AgentErrorCode, agentError } from '../errors.js';
import { OutputMeter, type OutputCaps } from '../exec/output-cap.js';
import { describeValue, type ExecPolicy, type ResolvedCommand } from '../policy/exec-policy.js';
import { FIXED_EXEC_PATH } from '../policy/exec-resolve.js';

export interface ExecRequest {
  readonly command: unknown;
  readonly args: unknown;
}

export type { ExecResult, ExecExit } from '@vmlink/agent-protocol';

export interface StartOptions {
  readonly cwd: string;
  /** Aborted on cancel, client gone, or shutdown: the whole process group is killed. */
  readonly signal: AbortSignal;
  /**
   * The command's whole process group is killed after this long (ERR_VMLINK_EXEC_TIMEOUT);
   * 0: no time limit (detached processes run until they exit or are killed). Commands on
   * pipes only: a terminal session is bound by `signal` (exec/pty-command.ts terminalLifetime).
   */
  readonly timeoutMs: number;
  /**
   * After the command exits, how long output still in its pipes may take to arrive: a
   * process that escaped the group (setsid) may hold them open forever.
   */
  readonly drainMs?: number;
  /** Give the command a stdin pipe (fed by exec.stdin); closed (/dev/null) otherwise. */
  readonly stdin?: boolean;
  /** Variables the client set (already checked against --allow-env); PATH stays the fixed one. */
  readonly env?: Readonly<Record<string, string>>;
  /** Bytes per stream delivered at most; past it the stream is cut (default: no cap). */
  readonly caps?: OutputCaps;
}

/**
 * A started command, on pipes (PipeCommand) or on a terminal (exec/pty-command.ts): what
 * exec, exec.stdin, exec.signal and detached processes use.
 */
export interface RunningCommand {
  /** The process group id (the command leads its own group). */
  readonly pid: number | undefined;
  /** True once the command has exited. */
  readonly exitedAlready: boolean;
  /** exec.stdin: the client's bytes into the command, flow-controlled; the end closes its input. */
  feedStdin(body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number>;
  /** `name` to the whole process group. */
  sendSignal(name: ClientSignal): void;
  /** SIGKILL to the whole process group. */
  killGroup(): void;
  /** Delivers output until the command exited; resolves with its exit record. */
  collect(onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>): Promise<ExecExit>;
}

/** Signals a client may send to a command's process group (exec.signal). */
export const CLIENT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT'] as const;
export type ClientSignal = (typeof CLIENT_SIGNALS)[number];

const DEFAULT_DRAIN_MS = 1000;

/**
 * exec's time limit: `onTimeout` after `timeoutMs`, or no timer at all for 0. setTimeout
 * fires at once for more than 2^31-1 ms, so a longer limit waits that long (~24.8 days).
 */
export function startTimeLimit(timeoutMs: number, onTimeout: () => void): NodeJS.Timeout | undefined {
  if (timeoutMs <= 0) return undefined;
  return setTimeout(onTimeout, Math.min(timeoutMs, MAX_TIMER_MS));
}

/**
 * What ends a command early, for every kind of command: a cancelled request or its time
 * limit kills its group (`onTimeout` first marks why). Both are let go once it exited.
 */
export function limitLifetime(exited: Promise<unknown>, options: Pick<StartOptions, 'signal' | 'timeoutMs'>, killGroup: () => void, onTimeout: () => void): void {
  const { signal } = options;
  const kill = (): void => killGroup();
  if (signal.aborted) kill();
  else signal.addEventListener('abort', kill, { once: true });
  const timer = startTimeLimit(options.timeoutMs, () => {
    onTimeout();
    killGroup();
  });
  void exited.then(() => {
    clearTimeout(timer);
    signal.removeEventListener('abort', kill);
  });
}

/** The longest delay setTimeout honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Validates exec params: a command the policy allows and an array of string args. */
export function checkExecRequest(policy: ExecPolicy, request: ExecRequest): { command: string; args: string[] } {
  const command = policy.check(request.command);
  return { command, args: checkArgs(request.args) };
}

/** `args`: absent, or an array of strings without NUL bytes; the error names the bad value. */
export function checkArgs(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: args must be an array of strings, got ${describeValue(raw)}`);
  }
  raw.forEach((arg: unknown, index) => {
    if (typeof arg !== 'string') {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: args[${index}] must be a string, got ${describeValue(arg)}`);
    }
    if (arg.includes('\0')) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: args[${index}] contains a NUL byte: ${describeValue(arg)}`);
    }
  });
  return raw as string[];
}

/** The child's environment: the agent's plus the client's allowed names, but PATH is always the fixed one. */
export function childEnvironment(base: NodeJS.ProcessEnv = process.env, extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  return { ...base, ...extra, PATH: FIXED_EXEC_PATH };
}

/**
 * Starts an allowed command by its absolute path, without a shell, stdin closed, in a
 * process group of its own (setsid), and resolves once it runs, so that "not executable"
 * (EACCES) fails the call itself with its errno code.
 */
export function startCommand(command: ResolvedCommand, args: readonly string[], options: StartOptions): Promise<RunningCommand> {
  return new Promise<RunningCommand>((resolve, reject) => {
    const child = spawn(command.path, args, {
      cwd: options.cwd,
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      shell: false,
      // Its own session and process group: whatever it starts can be killed with it.
      detached: true,
      env: childEnvironment(process.env, options.env),
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(Object.assign(err, { message: `exec '${command.name}': ${err.message}` }));
    });
    child.once('spawn', () => resolve(new PipeCommand(child as ChildProcessByStdio<null, Readable, Readable>, command.name, options)));
  });
}

/**
 * A started command. It is over when the direct child exits, not when its pipes close
 * (a background grandchild may hold them forever): then its process group is killed,
 * the pipes get a short drain and are destroyed.
 */
export class PipeCommand implements RunningCommand {
  private readonly exited: Promise<ExecExit>;
  private timedOut = false;
  private hasExited = false;

  constructor(
    private readonly child: ChildProcessByStdio<null, Readable, Readable>,
    private readonly name: string,
    private readonly options: StartOptions,
  ) {
    // Listen at once: a quick command may exit before its output is collected.
    this.exited = new Promise((resolve) =>
      child.once('exit', (exitCode, signalName) => {
        this.hasExited = true;
        // Whatever it left running in its group goes with it.
        this.killGroup();
        resolve({ exitCode, signal: signalName });
      }),
    );
    limitLifetime(this.exited, options, () => this.killGroup(), () => {
      this.timedOut = true;
    });
  }

  /** True once the command has exited. */
  get exitedAlready(): boolean {
    return this.hasExited;
  }

  /**
   * exec.stdin: the client's bytes into the command's stdin, with backpressure (a command
   * that does not read stalls the client's stream, not the agent); the end closes stdin.
   */
  async feedStdin(body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number> {
    const stdin = (this.child as unknown as { stdin: import('node:stream').Writable | null }).stdin;
    if (!stdin) throw agentError(AgentErrorCode.INVALID_PARAMS, `exec.stdin: '${this.name}' was started without stdin (exec { stdin: true })`);
    stdin.on('error', () => undefined); // EPIPE: the command closed its stdin or exited
    let bytes = 0;
    for await (const chunk of body) {
      if (signal.aborted) throw signal.reason as Error;
      if (stdin.destroyed || this.hasExited) break;
      bytes += chunk.length;
      if (!stdin.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            stdin.off('drain', done);
            stdin.off('close', done);
            resolve();
          };
          stdin.on('drain', done);
          stdin.on('close', done);
        });
      }
    }
    if (!stdin.destroyed) stdin.end();
    return bytes;
  }

  /** exec.signal: `name` to the whole process group (what a terminal's Ctrl-C does). */
  sendSignal(name: ClientSignal): void {
    const pid = this.child.pid;
    if (pid === undefined || this.hasExited) return;
    try {
      process.kill(-pid, name);
    } catch {
      // ESRCH: the group is gone already.
    }
  }

  /** The process group id (the child's pid: it leads its own group). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGKILL to the whole process group; a group already gone is fine. */
  killGroup(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // ESRCH: nothing left in the group. The child itself is reaped by Node.
    }
    if (!this.hasExited) this.child.kill('SIGKILL'); // in case it left its group
  }

  /**
   * Forwards stdout and stderr chunk by chunk; a pipe is paused while its chunk is being
   * delivered, so a client that does not read blocks the child on a full pipe instead of
   * the agent buffering. If delivery fails (client gone) the group is killed.
   */
  async collect(onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>): Promise<ExecExit> {
    let failure: unknown;
    const unlimited = Number.MAX_SAFE_INTEGER;
    const meters = { stdout: new OutputMeter(this.options.caps?.stdout ?? unlimited), stderr: new OutputMeter(this.options.caps?.stderr ?? unlimited) };
    const drained = Promise.all([this.pump('stdout', onOutput, meters.stdout), this.pump('stderr', onOutput, meters.stderr)]).catch((error: unknown) => {
      failure = error;
      this.killGroup();
      this.child.stdout.destroy();
      this.child.stderr.destroy();
    });
    const result = await this.exited;
    const cut = setTimeout(() => {
      this.child.stdout.destroy();
      this.child.stderr.destroy();
    }, this.options.drainMs ?? DEFAULT_DRAIN_MS);
    await drained;
    clearTimeout(cut);
    if (failure !== undefined) throw failure;
    if (this.timedOut) {
      throw agentError(
        AgentErrorCode.EXEC_TIMEOUT,
        `exec '${this.name}' ran longer than ${this.options.timeoutMs} ms (--exec-timeout): its process group was killed`,
      );
    }
    return withTruncation(result, meters);
  }

  /**
   * Delivers one pipe in order; settles once it is closed and its last chunk delivered.
   * At its cap the pipe is closed (what `| head -c N` does): a writer that goes on gets
   * an error (ECONNRESET: Node's child pipes are socketpairs) or SIGPIPE instead of
   * blocking on a pipe nobody reads.
   */
  private pump(name: 'stdout' | 'stderr', onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>, meter: OutputMeter): Promise<void> {
    const stream = this.child[name];
    return new Promise<void>((resolve, reject) => {
      // Already closed (drained by Node before anyone read it): nothing more will come, and
      // waiting for a 'close' that has been would hang the exec.
      if (stream.closed) {
        resolve();
        return;
      }
      let delivering = false;
      let closed = false;
      let failed = false;
      stream.on('data', (chunk: Buffer) => {
        const { keep, reached } = meter.take(chunk);
        if (reached) stream.destroy();
        if (keep.length === 0) return;
        delivering = true;
        stream.pause();
        onOutput(name, keep).then(
          () => {
            delivering = false;
            if (closed) resolve();
            else if (!stream.destroyed) stream.resume();
          },
          (error: unknown) => {
            failed = true;
            reject(error);
          },
        );
      });
      // A pipe error (EPIPE, destroyed) ends its output like EOF.
      stream.on('error', () => undefined);
      stream.once('close', () => {
        closed = true;
        if (!delivering && !failed) resolve();
      });
    });
  }
}

/** The exit record, with the streams that were cut at their caps. */
export function withTruncation(result: { exitCode: number | null; signal: string | null }, meters: { stdout: OutputMeter; stderr: OutputMeter }): ExecExit {
  const truncated: { stdout?: number; stderr?: number } = {};
  if (meters.stdout.truncated) truncated.stdout = meters.stdout.cap;
  if (meters.stderr.truncated) truncated.stderr = meters.stderr.cap;
  return Object.keys(truncated).length > 0 ? { ...result, truncated } : { ...result };
}
