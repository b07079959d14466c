import { readFile } from 'node:fs/promises';
import { abortError, throwIfAborted, invalidArgType, validateAbortSignal, validateInteger } from '@vmlink/errors';
import type { ControlChannel } from './control.js';
import { readTail } from './console-log.js';
import { GuestError, RunTimeoutError, testVmError, TestVmErrorCode } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { GuestInfo, GuestMessage } from './protocol.js';
import { describeQemuExit, type SupervisedQemu } from './supervisor.js';
import type { VsockDeviceHandle } from './vsock-device.js';

export interface RunOptions {
  /** Working directory in the guest; default `/root`. */
  cwd?: string;
  /** Merged over the VM's environment; `undefined` removes a variable. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Kill the command (its whole process group) and reject with ERR_VMLINK_TESTVM_RUN_TIMEOUT. */
  timeoutMs?: number;
  /** Bytes for the command's stdin; without it stdin is /dev/null. */
  input?: string | Uint8Array;
  /** Kills the command and rejects with an AbortError. */
  signal?: AbortSignal;
  /** Called with each piece of output as it arrives (it is collected in the result too). */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Lower cap than the VM's `maxOutputBytes` on each of stdout and stderr kept for this command. */
  maxOutputBytes?: number;
}

export interface RunResult {
  /** The exit status; 128 + N when a signal N ended it (as a shell reports it). */
  exitCode: number;
  /** The signal that ended it, if any. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when some output went past `maxOutputBytes` and was dropped. */
  truncated: boolean;
}

/** One finished command as the guest recorded it on the result port. */
export interface CommandSummary {
  id: number;
  cmd: string;
  args: string[];
  exitCode: number;
  signal: string | null;
  stdoutTail: string;
  stderrTail: string;
}

/** The guest's environment before `options.env` and `run`'s env are merged over it. */
export function defaultGuestEnv(hostEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    HOME: '/root',
    USER: 'root',
    LANG: 'C.UTF-8',
  };
  if (hostEnv.CI !== undefined) env.CI = hostEnv.CI;
  return env;
}

interface PendingRun {
  stdout: Buffer[];
  stderr: Buffer[];
  bytes: { stdout: number; stderr: number };
  truncated: boolean;
  cap: number;
  listeners: { stdout?: (chunk: Buffer) => void; stderr?: (chunk: Buffer) => void };
  resolve: (result: RunResult) => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

export interface VmTimings {
  /** Kernel + initramfs from the cache (or built). */
  prepareMs: number;
  /** QEMU start until the runner said it is ready (of the boot that came up). */
  bootMs: number;
  /** Boots it took: 1, or 2 when the first guest kernel hung while booting (startVm booted it again). */
  bootAttempts: number;
}

/** A running guest. Always `await vm.stop()` (also after a failure) when done. */
export class Vm {
  /** What the guest reported when it became ready. */
  readonly info: GuestInfo;
  readonly timings: VmTimings;
  private nextId = 1;
  private readonly runs = new Map<number, PendingRun>();
  private stopping: Promise<void> | undefined;
  private goneError: Error | undefined;
  private onBye: (() => void) | undefined;

  /** @internal use startVm() */
  constructor(
    private readonly qemu: SupervisedQemu,
    private readonly control: ControlChannel,
    private readonly options: ResolvedOptions,
    private readonly paths: { tmpDir: string; consoleLog: string; resultLog: string; ports: Map<string, string> },
    info: GuestInfo,
    timings: VmTimings,
    private readonly vsock?: { device: VsockDeviceHandle; owned: boolean },
  ) {
    this.info = info;
    this.timings = timings;
    void qemu.exited.then(async (exit) => {
      if (this.stopping !== undefined) return;
      const tail = await readTail(this.paths.consoleLog);
      this.markGone(new GuestError(TestVmErrorCode.GUEST_EXITED, `the guest went away before vm.stop(): ${describeQemuExit(exit)}`, tail));
    });
  }

  /** QEMU's process id. */
  get pid(): number {
    return this.qemu.pid ?? -1;
  }

  /** The VM's private temp folder (sockets, console log); removed by stop(). */
  get tmpDir(): string {
    return this.paths.tmpDir;
  }

  /**
   * With `vsock`: the host side of the guest's vsock device, hybrid-vsock style. Connect and
   * write `CONNECT <port>\n` to reach a guest listener (`OK <port>\n` comes back); the guest's
   * connects to CID 2 port P arrive at a Unix listener on `${vsockPath}_${P}`. Undefined without vsock.
   */
  get vsockPath(): string | undefined {
    return this.vsock?.device.udsPath;
  }

  /** With `vsock`: the guest's CID (what the guest's localCid() reports). */
  get guestCid(): number | undefined {
    return this.vsock?.device.guestCid;
  }

  /** Host path of the Unix socket behind virtio-serial port `name` (QEMU listens; connect to it). */
  portPath(name: string): string {
    const path = this.paths.ports.get(name);
    if (path === undefined) {
      throw testVmError(
        TestVmErrorCode.UNKNOWN_PORT,
        `no virtio-serial port named ${JSON.stringify(name)}; this VM has: ${[...this.paths.ports.keys()].join(', ') || 'none'}`,
      );
    }
    return path;
  }

  /** What the guest printed on its serial console so far (the tail). */
  consoleTail(maxBytes = 16384): Promise<string> {
    return readTail(this.paths.consoleLog, maxBytes);
  }

  /**
   * The guest's own record of finished commands, from the result port (a host file the
   * guest writes): exit code, signal and the last 4 KiB of each stream, oldest first.
   */
  async resultLog(): Promise<CommandSummary[]> {
    const text = await readFile(this.paths.resultLog, 'utf8').catch(() => '');
    const summaries: CommandSummary[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const value = JSON.parse(line) as Partial<CommandSummary>;
        if (typeof value.cmd === 'string' && typeof value.exitCode === 'number') summaries.push(value as CommandSummary);
      } catch {
        // A line cut short by a guest that died mid-write.
      }
    }
    return summaries;
  }

  /** Runs `cmd args` in the guest and collects its output and exit code. */
  run(cmd: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
    if (typeof cmd !== 'string' || cmd === '') return Promise.reject(invalidArgType('cmd', 'a non-empty string', cmd));
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) {
      return Promise.reject(invalidArgType('args', 'an array of strings', args));
    }
    try {
      validateAbortSignal(options.signal, 'options.signal');
      if (options.timeoutMs !== undefined) validateInteger(options.timeoutMs, 'options.timeoutMs', 1, 2 ** 31 - 1);
      if (options.maxOutputBytes !== undefined) validateInteger(options.maxOutputBytes, 'options.maxOutputBytes', 0, 2 ** 31 - 1);
      throwIfAborted(options.signal);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.goneError !== undefined) return Promise.reject(this.goneError);
    if (this.stopping !== undefined) return Promise.reject(testVmError(TestVmErrorCode.STOPPED, 'the VM is stopped'));

    const env: Record<string, string> = { ...defaultGuestEnv(), ...this.options.env };
    for (const [key, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
    const id = this.nextId++;
    const input = options.input === undefined ? undefined : Buffer.from(options.input).toString('base64');
    return new Promise<RunResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        this.control.send({ type: 'kill', id });
        this.finishRun(id, abortError(options.signal));
      };
      const run: PendingRun = {
        stdout: [],
        stderr: [],
        bytes: { stdout: 0, stderr: 0 },
        truncated: false,
        cap: Math.min(options.maxOutputBytes ?? Infinity, this.options.maxOutputBytes),
        listeners: { stdout: options.onStdout, stderr: options.onStderr },
        resolve,
        reject,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        },
      };
      this.runs.set(id, run);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        const timeoutMs = options.timeoutMs;
        timer = setTimeout(() => {
          this.control.send({ type: 'kill', id });
          const { stdout, stderr } = decode(run);
          this.finishRun(
            id,
            new RunTimeoutError(`'${[cmd, ...args].join(' ')}' did not finish within ${timeoutMs} ms; it was killed`, stdout, stderr),
          );
        }, timeoutMs);
      }
      this.control.send({ type: 'run', id, cmd, args: [...args], cwd: options.cwd ?? '/root', env, ...(input === undefined ? {} : { input }) });
    });
  }

  /** @internal */
  handleMessage(message: GuestMessage): void {
    switch (message.type) {
      case 'out': {
        const run = this.runs.get(message.id);
        if (run === undefined) return;
        const chunk = Buffer.from(message.data, 'base64');
        run.listeners[message.stream]?.(chunk);
        const room = run.cap - run.bytes[message.stream];
        if (chunk.length > room) run.truncated = true;
        const kept = chunk.subarray(0, Math.max(0, room));
        run[message.stream].push(kept);
        run.bytes[message.stream] += kept.length;
        return;
      }
      case 'exit': {
        const run = this.runs.get(message.id);
        if (run === undefined) return;
        if (message.failure === 'bad-cwd') {
          this.finishRun(message.id, testVmError(TestVmErrorCode.BAD_CWD, message.spawnError ?? 'bad working directory'));
          return;
        }
        const { stdout, stderr } = decode(run);
        this.finishRun(message.id, {
          exitCode: message.exitCode,
          signal: message.signal,
          stdout,
          stderr: message.spawnError === undefined ? stderr : `${stderr}${message.spawnError}\n`,
          truncated: run.truncated || message.truncated,
        });
        return;
      }
      case 'bye':
        this.onBye?.();
        return;
      case 'fatal':
        this.markGone(testVmError(TestVmErrorCode.GUEST_EXITED, `the guest runner failed: ${message.message}`));
        return;
      case 'ready':
        return;
    }
  }

  private finishRun(id: number, outcome: RunResult | Error): void {
    const run = this.runs.get(id);
    if (run === undefined) return;
    this.runs.delete(id);
    run.cleanup();
    if (outcome instanceof Error) run.reject(outcome);
    else run.resolve(outcome);
  }

  private markGone(err: Error): void {
    this.goneError ??= err;
    for (const id of [...this.runs.keys()]) this.finishRun(id, err);
  }

  /** Stops the guest: QEMU is killed, sockets and the temp folder are removed. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    for (const id of [...this.runs.keys()]) {
      this.finishRun(id, testVmError(TestVmErrorCode.STOPPED, 'the VM was stopped while the command ran'));
    }
    if (!this.qemu.hasExited) {
      // Let the guest flush writes to the shares (sync) before the plug is pulled.
      const bye = new Promise<void>((resolve) => {
        this.onBye = resolve;
      });
      this.control.send({ type: 'shutdown' });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([bye, this.qemu.exited, new Promise((resolve) => (timer = setTimeout(resolve, 3000)))]);
      clearTimeout(timer);
    }
    this.control.close();
    await this.qemu.release();
    // After QEMU: closing the device ends every host connection. A caller's device stays open.
    if (this.vsock?.owned === true) await this.vsock.device.close();
  }

  /** Lets the process exit while the VM runs (the supervisor still cleans up when it does). */
  unref(): void {
    this.qemu.unref();
    this.control.unref();
  }

  ref(): void {
    this.qemu.ref();
    this.control.ref();
  }
}

function decode(run: PendingRun): { stdout: string; stderr: string } {
  return { stdout: Buffer.concat(run.stdout).toString('utf8'), stderr: Buffer.concat(run.stderr).toString('utf8') };
}
