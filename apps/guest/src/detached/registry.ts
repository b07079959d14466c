import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { AgentErrorCode, type DetachedLimits } from '@vmlink/agent-protocol';
import { VmlinkError } from '@vmlink/errors';
import type { RunningCommand } from '../methods/exec.js';
import { describeValue } from '../policy/exec-policy.js';
import { DetachedProcess } from './process.js';

export const DEFAULT_DETACHED_LIMITS: DetachedLimits = {
  maxRunning: 16,
  maxExited: 16,
  outputBytes: 1024 * 1024,
};

/**
 * Registries with running processes. One 'exit' hook for all of them (an agent process may
 * run many agents as a library): whatever is still running when the process exits (after
 * the CLI's shutdown, or on a fatal error) has its group killed, synchronously, on the way
 * out. A registry with nothing running is not held here.
 */
const withRunning = new Set<DetachedRegistry>();
let exitHookInstalled = false;

function trackRunning(registry: DetachedRegistry, running: boolean): void {
  if (!running) {
    withRunning.delete(registry);
    return;
  }
  withRunning.add(registry);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const r of withRunning) r.shutdown();
    });
  }
}

/** The detached methods' own refusals. */
type DetachedErrorCode = typeof AgentErrorCode.NO_SUCH_PROCESS | typeof AgentErrorCode.DETACHED_LIMIT | typeof AgentErrorCode.DETACHED_DISABLED;

export function detachedError(code: DetachedErrorCode, message: string): VmlinkError {
  return new VmlinkError(code, message);
}

/**
 * The agent's detached processes, shared by all its connections (a client that
 * reconnects finds them by id). Bounded: at most `maxRunning` running, at most
 * `maxExited` exited ones remembered (the one that exited longest ago is forgotten
 * first), each holding at most 2 x outputBytes of output (plus a block per ring), so the
 * whole registry holds at most (maxRunning + maxExited) x 2 x outputBytes.
 *
 * On shutdown every running process group is killed (SIGKILL), as kata-agent does when
 * its sandbox stops: nobody could attach to, wait for or reap them afterwards.
 */
export class DetachedRegistry {
  private readonly processes = new Map<string, DetachedProcess>();
  /** Aborted at shutdown; every process's group is killed with it (exec's StartOptions.signal). */
  private readonly stopping = new AbortController();

  constructor(readonly limits: DetachedLimits = DEFAULT_DETACHED_LIMITS) {
    // One abort listener per running process, bounded by maxRunning: not a leak.
    setMaxListeners(0, this.stopping.signal);
  }

  /** For exec's startCommand: aborted when the registry shuts down. */
  get signal(): AbortSignal {
    return this.stopping.signal;
  }

  get running(): number {
    let n = 0;
    for (const p of this.processes.values()) if (!p.exited) n += 1;
    return n;
  }

  /** Starts under way (resolving, spawning): they count against maxRunning already. */
  private starting = 0;

  /**
   * Takes a slot for a process about to start, or throws (disabled, limit, shutting down).
   * Synchronous, so concurrent starts cannot all pass the check; release it once the
   * process is added (or failed to start).
   */
  reserve(): () => void {
    this.checkCanStart();
    this.starting += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.starting -= 1;
    };
  }

  private checkCanStart(): void {
    if (this.limits.maxRunning === 0) {
      throw detachedError(AgentErrorCode.DETACHED_DISABLED, 'detached processes are disabled on this agent (--max-detached 0)');
    }
    if (this.stopping.signal.aborted) throw new VmlinkError('ERR_VMLINK_SHUTTING_DOWN', 'the agent is shutting down: no new detached processes');
    const running = this.running + this.starting;
    if (running >= this.limits.maxRunning) {
      throw detachedError(AgentErrorCode.DETACHED_LIMIT, `${running} detached processes are running, the most this agent allows (--max-detached ${this.limits.maxRunning})`);
    }
  }

  /** Registers a started command under a fresh id. */
  add(command: string, args: readonly string[], running: RunningCommand): DetachedProcess {
    let id = newId();
    while (this.processes.has(id)) id = newId();
    const entry = new DetachedProcess(id, command, args, running, this.limits.outputBytes);
    this.processes.set(id, entry);
    trackRunning(this, true);
    void entry.finished.then(() => {
      this.forgetOldExited();
      if (this.running === 0) trackRunning(this, false);
    });
    return entry;
  }

  get(id: unknown, method: string): DetachedProcess {
    const entry = typeof id === 'string' ? this.processes.get(id) : undefined;
    if (!entry) {
      throw detachedError(
        AgentErrorCode.NO_SUCH_PROCESS,
        `${method}: no detached process ${describeValue(id)} (never started here, or it exited and was forgotten: the agent keeps the last ${this.limits.maxExited} exited)`,
      );
    }
    return entry;
  }

  /** Running ones first (oldest first), then exited ones (longest exited first). */
  list(): DetachedProcess[] {
    const all = [...this.processes.values()];
    const running = all.filter((p) => !p.exited).sort((a, b) => a.startedAt - b.startedAt);
    const exited = all.filter((p) => p.exited).sort((a, b) => (a.exitedAt ?? 0) - (b.exitedAt ?? 0));
    return [...running, ...exited];
  }

  /** Kills every group (SIGKILL, synchronously) and takes no new ones. */
  shutdown(): void {
    this.stopping.abort(new VmlinkError('ERR_VMLINK_SHUTTING_DOWN', 'the agent is shutting down'));
    for (const p of this.processes.values()) if (!p.exited) p.kill();
  }

  private forgetOldExited(): void {
    const exited = [...this.processes.values()].filter((p) => p.exited).sort((a, b) => (a.exitedAt ?? 0) - (b.exitedAt ?? 0));
    for (const p of exited.slice(0, Math.max(0, exited.length - this.limits.maxExited))) this.processes.delete(p.id);
  }
}

/** 16 hex digits: short enough to type, 64 random bits so one client cannot guess another's. */
function newId(): string {
  return randomBytes(8).toString('hex');
}
