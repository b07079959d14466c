import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { doctor, type DoctorReport } from '../doctor.js';
import { startVm } from '../start-vm.js';
import type { Vm } from '../vm.js';
import { parseDoctorArgs, parseRunArgs, usageError, type RunArgs } from './args.js';

/** Exit status for "the guest hung, failed to boot, or the input was bad". */
export const EXIT_VM_FAILED = 2;

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Ctrl-C aborts the boot or the command; the VM is always stopped. */
function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

async function boot(args: RunArgs, signal: AbortSignal): Promise<Vm> {
  return startVm({
    share: args.share,
    shareReadOnly: args.readOnly,
    ports: args.port,
    withPrograms: args.with,
    memoryMiB: args.memoryMiB,
    cpus: args.cpus,
    timeoutMs: args.bootTimeoutSeconds === undefined ? undefined : Math.ceil(args.bootTimeoutSeconds * 1000),
    signal,
    ...(args.arch === undefined ? {} : { arch: args.arch }),
    ...(args.vsockGuestCid === undefined ? {} : { vsock: { guestCid: args.vsockGuestCid } }),
  });
}

/** Tells a person (stderr) and a wrapper (VMLINK_TESTVM_VSOCK_FILE) where the guest's vsock is. */
async function announceVsock(vm: Vm): Promise<void> {
  if (vm.vsockPath === undefined) return;
  process.stderr.write(`vmlink-testvm: vsock host socket ${vm.vsockPath} (guest CID ${vm.guestCid}; guest->host port P: ${vm.vsockPath}_P)\n`);
  if (process.env.VMLINK_TESTVM_VSOCK_FILE !== undefined) {
    await writeFile(process.env.VMLINK_TESTVM_VSOCK_FILE, JSON.stringify({ udsPath: vm.vsockPath, guestCid: vm.guestCid }));
  }
}

/** The guest cwd: --cwd, else the host's cwd when a share contains it, else /root. */
function guestCwd(args: RunArgs): string {
  if (args.cwd !== undefined) return resolve(args.cwd);
  const here = process.cwd();
  const shared = args.share.map((s) => resolve(s)).some((s) => here === s || here.startsWith(s.endsWith(sep) ? s : s + sep));
  return shared ? here : '/root';
}

export async function runCommand(argv: readonly string[]): Promise<number> {
  const args = parseRunArgs(argv, true);
  const [cmd, ...cmdArgs] = args.command;
  if (cmd === undefined) throw usageError('no command given: put it after --', 'run');
  const interrupt = interruptSignal();
  let vm: Vm | undefined;
  try {
    vm = await boot(args, interrupt.signal);
    if (process.env.VMLINK_TESTVM_PORTS_FILE !== undefined) {
      // Lets a wrapper find the host sockets of --port NAME while the command runs.
      await writeFile(process.env.VMLINK_TESTVM_PORTS_FILE, JSON.stringify(Object.fromEntries(args.port.map((p) => [p, vm?.portPath(p)]))));
    }
    await announceVsock(vm);
    const result = await vm.run(cmd, cmdArgs, {
      cwd: guestCwd(args),
      env: args.env,
      timeoutMs: args.timeoutSeconds === undefined ? undefined : Math.ceil(args.timeoutSeconds * 1000),
      signal: interrupt.signal,
      onStdout: (chunk) => process.stdout.write(chunk),
      onStderr: (chunk) => process.stderr.write(chunk),
    });
    if (result.truncated) process.stderr.write('vmlink-testvm: output was truncated (over the per-command cap)\n');
    return result.exitCode;
  } finally {
    interrupt.dispose();
    await vm?.stop();
  }
}

export async function infoCommand(argv: readonly string[]): Promise<number> {
  const args = parseRunArgs(argv, false);
  const interrupt = interruptSignal();
  const started = performance.now();
  let vm: Vm | undefined;
  try {
    vm = await boot(args, interrupt.signal);
    const bootMs = performance.now() - started;
    await announceVsock(vm);
    const { info } = vm;
    const lines = [
      `arch:           ${info.arch}`,
      `kernel release: ${info.release}`,
      `cpus:           ${info.cpus}`,
      `memory:         ${Math.round(info.memoryBytes / (1024 * 1024))} MiB`,
      `modules:        ${[...info.modules].reverse().join(' ')}`,
      `boot:           ${formatSeconds(bootMs)} (cache ${formatSeconds(vm.timings.prepareMs)}, QEMU to ready ${formatSeconds(vm.timings.bootMs)})`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    interrupt.dispose();
    await vm?.stop();
  }
}

/** The outcome of `doctor --probe-kvm`: whether a KVM guest booted, in words. */
export interface KvmProbe {
  booted: boolean;
  detail: string;
}

async function probeKvm(): Promise<KvmProbe> {
  let vm: Vm | undefined;
  try {
    vm = await startVm({ accel: 'kvm', timeoutMs: 30_000 });
    return { booted: true, detail: `a KVM guest booted in ${formatSeconds(vm.timings.bootMs)}: accel: 'kvm' works here` };
  } catch (err) {
    const { code, message } = err as { code?: string; message?: string };
    const reason = (message ?? '').split('\n')[0]?.slice(0, 300);
    return { booted: false, detail: `a KVM guest did not boot (${code ?? 'error'}: ${reason}): keep the default TCG` };
  } finally {
    await vm?.stop();
  }
}

/** What `doctor --json` prints: the report, the fix as one shell line (or null), the KVM probe if asked. */
export interface DoctorJson extends DoctorReport {
  fix: string | null;
  kvmProbe?: KvmProbe;
}

function fixLine(report: DoctorReport): string | null {
  return report.missingPackages.length === 0 ? null : `apt-get update && apt-get install -y ${report.missingPackages.join(' ')}`;
}

/** Runs apt-get for the missing packages; its output goes to `out` (stderr under --json). Returns false on failure. */
function installMissing(report: DoctorReport, out: NodeJS.WritableStream, outFd: 1 | 2): boolean {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`vmlink-testvm: --install needs root; run as root: ${fixLine(report) ?? ''}\n`);
    return false;
  }
  const steps = [['apt-get', ['update']], ['apt-get', ['install', '-y', ...report.missingPackages]]] as const;
  for (const [file, stepArgs] of steps) {
    out.write(`+ ${file} ${stepArgs.join(' ')}\n`);
    const res = spawnSync(file, stepArgs, { stdio: ['ignore', outFd, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (res.status !== 0) return false;
  }
  return true;
}

export async function doctorCommand(argv: readonly string[]): Promise<number> {
  const args = parseDoctorArgs(argv);
  // With --json, stdout carries exactly one JSON document; everything else goes to stderr.
  const log = args.json ? process.stderr : process.stdout;
  const options = args.arch === undefined ? {} : { arch: args.arch };
  let report = await doctor(options);
  if (args.install && report.missingPackages.length > 0) {
    if (!installMissing(report, log, args.json ? 2 : 1)) return 1;
    report = await doctor(options);
  }
  const kvmProbe = args.probeKvm ? await probeKvm() : undefined;
  if (args.json) {
    const out: DoctorJson = { ...report, fix: fixLine(report), ...(kvmProbe === undefined ? {} : { kvmProbe }) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return report.ok ? 0 : 1;
  }
  for (const check of report.checks) {
    const mark = check.ok ? 'ok     ' : check.required ? 'MISSING' : 'note   ';
    process.stdout.write(`${mark} ${check.name}: ${check.detail}\n`);
  }
  if (kvmProbe !== undefined) process.stdout.write(`probe   KVM: ${kvmProbe.detail}\n`);
  const fix = fixLine(report);
  if (fix !== null) {
    process.stdout.write(`\nTo fix, as root:\n  ${fix}\n`);
  } else if (report.ok) {
    process.stdout.write('\nEverything the test guest needs is here.\n');
  }
  return report.ok ? 0 : 1;
}
