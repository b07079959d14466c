import type { DetachedProcessInfo, DetachedSignal, DetachedStreamBytes, ExecResult } from '@vmlink/agent-protocol';
import type { RunningCommand } from '../methods/exec.js';
import { OutputRing } from './output-ring.js';

export type OutputStream = 'stdout' | 'stderr';

/**
 * One detached process: the running command (exec's RunningCommand: own session and
 * process group, fixed PATH, group killed when the leader exits) and one ring per stream.
 * Its pipes are always read, nobody attached or not: a detached process never blocks on
 * output; what does not fit the ring is dropped and counted.
 */
export class DetachedProcess {
  readonly stdout: OutputRing;
  readonly stderr: OutputRing;
  readonly startedAt = Date.now();
  private result: ExecResult | undefined;
  private exitedAtMs: number | undefined;
  /** Where attaching without --from-start begins: the furthest any attach got per stream. */
  private readonly delivered = { stdout: 0, stderr: 0 };
  private readonly listeners = new Set<() => void>();
  /** Settles once the command exited and its output was collected. */
  readonly finished: Promise<ExecResult>;

  constructor(
    readonly id: string,
    readonly command: string,
    readonly args: readonly string[],
    private readonly running: RunningCommand,
    ringBytes: number,
  ) {
    this.stdout = new OutputRing(ringBytes);
    this.stderr = new OutputRing(ringBytes);
    this.finished = running
      .collect(async (stream, chunk) => {
        this.ring(stream).write(chunk);
        this.notify();
      })
      .catch((error: unknown): ExecResult => {
        // collect fails only when the output could not be delivered (never here: the ring
        // always takes it) or on exec's timeout, which detached processes do not use.
        return { exitCode: null, signal: (error as { code?: string }).code ?? 'ERROR' };
      })
      .then((result) => {
        this.result = result;
        this.exitedAtMs = Date.now();
        this.notify();
        return result;
      });
  }

  get pid(): number {
    return this.running.pid ?? 0;
  }

  get exited(): boolean {
    return this.result !== undefined;
  }

  get exitedAt(): number | undefined {
    return this.exitedAtMs;
  }

  get exitResult(): ExecResult | undefined {
    return this.result;
  }

  ring(stream: OutputStream): OutputRing {
    return stream === 'stdout' ? this.stdout : this.stderr;
  }

  /** Where an attach that continues starts on `stream`. */
  deliveredUpTo(stream: OutputStream): number {
    return this.delivered[stream];
  }

  /** A client has `offset` bytes of `stream` (acknowledged, or sent to a client that does not acknowledge). */
  markDelivered(stream: OutputStream, offset: number): void {
    if (offset > this.delivered[stream]) this.delivered[stream] = offset;
  }

  /** `onChange` runs after new output or the exit; returns the unsubscribe. */
  subscribe(onChange: () => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }

  /** `name` to the whole process group; false when it had exited already. */
  signal(name: DetachedSignal): boolean {
    if (this.exited || this.running.exitedAlready) return false;
    this.running.sendSignal(name);
    return true;
  }

  /** SIGKILL to the whole process group (agent shutdown). */
  kill(): void {
    this.running.killGroup();
  }

  info(): DetachedProcessInfo {
    return {
      id: this.id,
      pid: this.pid,
      command: this.command,
      args: [...this.args],
      state: this.exited ? 'exited' : 'running',
      exitCode: this.result?.exitCode ?? null,
      signal: this.result?.signal ?? null,
      startedAt: this.startedAt,
      exitedAt: this.exitedAtMs ?? null,
      stdout: { ...bytesOf(this.stdout), delivered: this.delivered.stdout },
      stderr: { ...bytesOf(this.stderr), delivered: this.delivered.stderr },
    };
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

function bytesOf(ring: OutputRing): DetachedStreamBytes {
  return { total: ring.total, kept: ring.kept, dropped: ring.dropped };
}
