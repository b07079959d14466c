import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
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

export interface ExecIo {
  /** Called per chunk of output; resolving means "ready for more" (backpressure). */
  readonly onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>;
  readonly cwd: string;
  readonly signal: AbortSignal;
}

/** Validates exec params: a command the policy allows and an array of string args. */
export function checkExecRequest(policy: ExecPolicy, request: ExecRequest): { command: string; args: string[] } {
  const command = policy.check(request.command);
  const args = request.args ?? [];
  if (!Array.isArray(args) || !args.every((a): a is string => typeof a === 'string' && !a.includes('\0'))) {
    throw Object.assign(new Error('exec: args must be an array of strings without NUL bytes'), { code: 'ERR_VMLINK_INVALID_PARAMS' });
  }
  return { command, args };
}

/**
 * Runs an allowed command without a shell, stdin closed. Output is paused while the
 * client is not reading it (the child then blocks on a full pipe instead of the agent
 * buffering without bound). Aborting (client gone, shutdown) kills the child.
 */
export function runCommand(command: string, args: readonly string[], io: ExecIo): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(command, args, { cwd: io.cwd, stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    io.signal.addEventListener('abort', kill, { once: true });
    let pendingOutputs = 0;
    const pipe = (name: 'stdout' | 'stderr'): void => {
      const stream = child[name];
      stream.on('data', (chunk: Buffer) => {
        stream.pause();
        pendingOutputs += 1;
        io.onOutput(name, chunk).then(
          () => {
            pendingOutputs -= 1;
            stream.resume();
            maybeDone();
          },
          (err: unknown) => {
            pendingOutputs -= 1;
            kill();
            failure ??= err as Error;
            maybeDone();
          },
        );
      });
    };
    let failure: Error | undefined;
    let exit: ExecResult | undefined;
    let streamsOpen = 2;
    const maybeDone = (): void => {
      if (exit === undefined || streamsOpen > 0 || pendingOutputs > 0) return;
      io.signal.removeEventListener('abort', kill);
      if (failure) reject(failure);
      else resolve(exit);
    };
    pipe('stdout');
    pipe('stderr');
    child.stdout.on('close', () => {
      streamsOpen -= 1;
      maybeDone();
    });
    child.stderr.on('close', () => {
      streamsOpen -= 1;
      maybeDone();
    });
    child.on('error', (err) => {
      // spawn failure (ENOENT: not installed): no 'exit' follows.
      io.signal.removeEventListener('abort', kill);
      reject(Object.assign(err, { message: `exec '${command}': ${err.message}` }));
    });
    child.on('exit', (code, signal) => {
      exit = { exitCode: code, signal };
      maybeDone();
    });
  });
}

/** The shell convention: 128 + signal number. */
export function exitStatusOf(result: ExecResult): number {
  if (result.exitCode !== null) return result.exitCode;
  const number = result.signal ? osConstants.signals[result.signal as keyof typeof osConstants.signals] : undefined;
  return 128 + (number ?? 0);
}
