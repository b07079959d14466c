import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { AgentErrorCode, agentError } from '../errors.js';
import type { ExecPolicy } from '../policy/exec-policy.js';

export interface ExecRequest {
  readonly command: unknown;
  readonly args: unknown;
}

export interface ExecResult {
  /** The exit code, or null when a signal ended the process. */
  exitCode: number | null;
  signal: string | null;
}

/** Validates exec params: a command the policy allows and an array of string args. */
export function checkExecRequest(policy: ExecPolicy, request: ExecRequest): { command: string; args: string[] } {
  const command = policy.check(request.command);
  const args = request.args ?? [];
  if (!Array.isArray(args) || !args.every((a): a is string => typeof a === 'string' && !a.includes('\0'))) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, 'exec: args must be an array of strings without NUL bytes');
  }
  return { command, args };
}

/**
 * Starts an allowed command without a shell, stdin closed, and resolves once it runs, so
 * that "not installed" (ENOENT) or "not executable" (EACCES) fail the call itself with
 * their errno code. Aborting (client gone, shutdown) kills the child.
 */
export function startCommand(command: string, args: readonly string[], options: { cwd: string; signal: AbortSignal }): Promise<RunningCommand> {
  return new Promise<RunningCommand>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(Object.assign(err, { message: `exec '${command}': ${err.message}` }));
    });
    child.once('spawn', () => resolve(new RunningCommand(child, options.signal)));
  });
}

/** A started child: its output is forwarded with backpressure, then its exit status. */
export class RunningCommand {
  private readonly exited: Promise<ExecResult>;

  constructor(
    private readonly child: ChildProcessByStdio<null, Readable, Readable>,
    private readonly signal: AbortSignal,
  ) {
    // Listen at once: a quick command may exit before its output is collected.
    this.exited = new Promise((resolve) => child.once('exit', (exitCode, signalName) => resolve({ exitCode, signal: signalName })));
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    if (signal.aborted) kill();
    else signal.addEventListener('abort', kill, { once: true });
    void this.exited.then(() => signal.removeEventListener('abort', kill));
  }

  /**
   * Forwards stdout and stderr chunk by chunk; a pipe is paused while its chunk is being
   * delivered, so a client that does not read blocks the child on a full pipe instead of
   * the agent buffering. If delivery fails (client gone) the child is killed.
   */
  async collect(onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>): Promise<ExecResult> {
    const forward = async (name: 'stdout' | 'stderr'): Promise<void> => {
      for await (const chunk of this.child[name]) await onOutput(name, chunk as Buffer);
    };
    try {
      await Promise.all([forward('stdout'), forward('stderr')]);
    } catch (error) {
      this.child.kill('SIGKILL');
      throw error;
    }
    return this.exited;
  }
}
