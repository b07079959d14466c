import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { assetPath } from './assets.js';
import { findExecutable } from './host-files.js';

export interface QemuExit {
  code: number | null;
  signal: string | null;
  /** Set when QEMU could not be started at all. */
  spawnError?: string;
}

/**
 * QEMU running under assets/supervisor.cjs, which kills it and removes `tmpDir` once our
 * end of its stdin closes, whether we close it or the kernel does after we die.
 */
export class SupervisedQemu {
  /** QEMU's pid, once spawned. */
  pid: number | undefined;
  readonly spawned: Promise<number>;
  readonly exited: Promise<QemuExit>;
  /** Resolves when the supervisor is gone (QEMU dead, temp folder removed). */
  readonly finished: Promise<void>;
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private exitInfo: QemuExit | undefined;

  private constructor(command: readonly string[], tmpDir: string) {
    this.child = spawn(process.execPath, [assetPath('supervisor.cjs'), tmpDir, ...command], {
      stdio: ['pipe', 'pipe', 'ignore'],
      // Its own process group: a signal meant for the caller's group must not take the
      // supervisor down before it has cleaned up.
      detached: true,
    });
    this.child.stdin.on('error', () => {});
    let resolveSpawned: (pid: number) => void = () => {};
    let rejectSpawned: (err: Error) => void = () => {};
    let resolveExited: (exit: QemuExit) => void = () => {};
    this.spawned = new Promise((res, rej) => {
      resolveSpawned = res;
      rejectSpawned = rej;
    });
    this.spawned.catch(() => {});
    this.exited = new Promise((res) => {
      resolveExited = res;
    });
    const settleExit = (exit: QemuExit): void => {
      if (this.exitInfo !== undefined) return;
      this.exitInfo = exit;
      rejectSpawned(new Error(exit.spawnError ?? 'QEMU exited'));
      resolveExited(exit);
    };
    let pending = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (text: string) => {
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        let report: { type?: string; pid?: number; code?: number | string | null; signal?: string | null; message?: string };
        try {
          report = JSON.parse(line) as typeof report;
        } catch {
          continue;
        }
        if (report.type === 'spawned' && typeof report.pid === 'number') {
          this.pid = report.pid;
          resolveSpawned(report.pid);
        } else if (report.type === 'exit') {
          settleExit({ code: typeof report.code === 'number' ? report.code : null, signal: report.signal ?? null });
        } else if (report.type === 'error') {
          settleExit({ code: null, signal: null, spawnError: report.message ?? 'spawn failed' });
        }
      }
    });
    this.finished = new Promise((res) => {
      this.child.on('close', () => {
        settleExit({ code: null, signal: null, spawnError: this.pid === undefined ? 'the supervisor exited early' : undefined });
        res();
      });
    });
  }

  /** Starts `qemu args...` under the supervisor (and `setpriv --pdeathsig KILL` when the host has it). */
  static async start(qemu: string, args: readonly string[], tmpDir: string): Promise<SupervisedQemu> {
    const setpriv = await findExecutable('setpriv');
    const command = setpriv === undefined ? [qemu, ...args] : [setpriv, '--pdeathsig', 'KILL', '--', qemu, ...args];
    return new SupervisedQemu(command, tmpDir);
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** Kills QEMU now; the temp folder stays until release(). */
  kill(): void {
    if (!this.child.stdin.destroyed) this.child.stdin.write('k');
  }

  /** Lets the supervisor finish: QEMU is killed if still running, the temp folder removed. */
  async release(): Promise<void> {
    this.child.stdin.end();
    await this.finished;
  }

  ref(): void {
    this.child.ref();
    (this.child.stdout as Readable & { ref?: () => void }).ref?.();
    (this.child.stdin as Writable & { ref?: () => void }).ref?.();
  }

  unref(): void {
    this.child.unref();
    (this.child.stdout as Readable & { unref?: () => void }).unref?.();
    (this.child.stdin as Writable & { unref?: () => void }).unref?.();
  }
}

/** 'QEMU exited with code 1', 'QEMU was killed by SIGKILL', ... */
export function describeQemuExit(exit: QemuExit): string {
  if (exit.spawnError !== undefined) return `QEMU could not start: ${exit.spawnError}`;
  if (exit.signal !== null) return `QEMU was killed by ${exit.signal}`;
  return `QEMU exited with code ${exit.code}`;
}
