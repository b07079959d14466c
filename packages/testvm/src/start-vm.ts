import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { abortError, throwIfAborted, VmlinkError } from '@vmlink/errors';
import { aptInstallLineFor, archProfile, isForeign, type ArchProfile } from './arch.js';
import { foreignApt } from './apt.js';
import { getGuestNode } from './guest-node.js';
import { GUEST_MODULES } from './kernel-modules.js';
import { getUserland } from './userland.js';
import { cacheRoot } from './cache.js';
import { connectWhenListening, ControlChannel } from './control.js';
import { MAX_BOOT_ATTEMPTS, shouldBootAgain, watchForBootHang } from './boot-hang.js';
import { readTail } from './console-log.js';
import { GuestError, testVmError, TestVmErrorCode } from './errors.js';
import { findExecutable, resolvePrograms } from './host-files.js';
import { getInitramfs, type Initramfs } from './initramfs.js';
import { getKernel, type GuestKernel } from './kernel.js';
import { resolveOptions, type ResolvedOptions, type StartVmOptions } from './options.js';
import type { GuestInfo, GuestMessage } from './protocol.js';
import { qemuArgs } from './qemu.js';
import { describeQemuExit, SupervisedQemu } from './supervisor.js';
import { Vm } from './vm.js';
import { driverReady, loadDeviceModule, type VsockDeviceHandle } from './vsock-device.js';

async function resolveQemu(options: ResolvedOptions, profile: ArchProfile): Promise<string> {
  const name = options.qemuBinary ?? profile.qemuBinary;
  const found = await findExecutable(name);
  if (found === undefined) {
    throw testVmError(
      TestVmErrorCode.QEMU_NOT_FOUND,
      `QEMU ('${name}') is not installed or not on PATH. Install it (package ${profile.qemuPackages.join(', ')}) with: ${aptInstallLineFor(profile)}`,
    );
  }
  return found;
}

interface GuestSystem {
  kernel: GuestKernel;
  initramfs: Initramfs;
}

/**
 * The guest's modules: microvm's devices sit on virtio-mmio, which Debian builds as a
 * module (found through ACPI once loaded); its own kernel/initramfs cache entries, so
 * q35 guests keep theirs unchanged.
 */
export function guestModulesFor(options: Pick<ResolvedOptions, 'machine'>): readonly string[] {
  if (options.machine !== 'microvm') return GUEST_MODULES;
  const at = GUEST_MODULES.indexOf('virtio_pci') + 1;
  return [...GUEST_MODULES.slice(0, at), 'virtio_mmio', ...GUEST_MODULES.slice(at)];
}

/** Kernel and initramfs: the host's node and libraries, or for a foreign guest Debian's userland and npm's node. */
async function prepareGuest(cache: string, profile: ArchProfile, options: ResolvedOptions): Promise<GuestSystem> {
  if (!isForeign(profile)) {
    const kernel = await getKernel(cache, profile, guestModulesFor(options));
    const programs = await resolvePrograms(options.withPrograms);
    const initramfs = await getInitramfs(cache, { kernel, node: options.guestNode ?? process.execPath, programs });
    return { kernel, initramfs };
  }
  const apt = await foreignApt(cache, profile);
  const kernel = await getKernel(cache, profile, GUEST_MODULES, apt);
  const userland = await getUserland(cache, profile, apt, options.withPrograms);
  const node = options.guestNode ?? (await getGuestNode(cache, profile));
  const initramfs = await getInitramfs(cache, { kernel, node, programs: [], userland });
  return { kernel, initramfs };
}

/**
 * The environment a foreign guest's commands start from: node-gyp-build would load an
 * addon built on the host (build/Release, the host's architecture) from a shared folder
 * before the prebuild for the guest's; PREBUILDS_ONLY makes it take prebuilds/linux-<arch>.
 */
export function foreignGuestEnv(): Record<string, string> {
  return { PREBUILDS_ONLY: '1' };
}


/**
 * The control channel, and the guest's 'ready' (or 'fatal' while setting up). Messages
 * after that go to `later`.
 */
function readyHandshake(socket: Socket, later: (message: GuestMessage) => void): { control: ControlChannel; ready: Promise<GuestInfo> } {
  let settled = false;
  let onReady: (info: GuestInfo) => void = () => {};
  let onFatal: (message: string) => void = () => {};
  const ready = new Promise<GuestInfo>((resolve, reject) => {
    onReady = resolve;
    onFatal = (message) => reject(testVmError(TestVmErrorCode.BOOT_FAILED, `the guest could not set up: ${message}`));
  });
  const control = new ControlChannel(
    socket,
    (message) => {
      if (settled) {
        later(message);
      } else if (message.type === 'ready') {
        settled = true;
        const { type: _type, ...info } = message;
        onReady(info);
      } else if (message.type === 'fatal') {
        settled = true;
        onFatal(message.message);
      }
    },
    () => {},
  );
  return { control, ready };
}

/**
 * The host's TSC rate in kHz (/proc/cpuinfo "cpu MHz"), which a TCG guest's rdtsc runs at:
 * what a microvm guest is told, having no timer to calibrate against.
 */
async function hostTscKhz(): Promise<number> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1];
  if (mhz === undefined) {
    throw new VmlinkError('ERR_INVALID_ARG_VALUE', "machine 'microvm' needs the host's TSC rate, and /proc/cpuinfo gives no 'cpu MHz'");
  }
  return Math.round(Number(mhz) * 1000);
}

/**
 * Boots a throwaway guest: Debian kernel, busybox initramfs with the host's node, the
 * shares at their host paths, the ports as /dev/virtio-ports/NAME. Resolves when a
 * command can run.
 */
export async function startVm(options: StartVmOptions = {}): Promise<Vm> {
  const given = await resolveOptions(options);
  const profile = archProfile(given.arch);
  const resolved = isForeign(profile) ? { ...given, env: { ...foreignGuestEnv(), ...given.env } } : given;
  const { signal } = resolved;
  throwIfAborted(signal);
  const qemuPath = await resolveQemu(resolved, profile);
  // A missing optional device package fails before the kernel and initramfs work.
  const deviceModule = resolved.vsock === undefined || resolved.vsock.device !== undefined ? undefined : await loadDeviceModule();

  const prepareStart = performance.now();
  const cache = cacheRoot();
  const { kernel, initramfs } = await prepareGuest(cache, profile, resolved);
  throwIfAborted(signal);
  const prepareMs = performance.now() - prepareStart;

  const firstBootStart = performance.now();
  for (let attempt = 1; ; attempt += 1) {
    const msLeft = resolved.timeoutMs - (performance.now() - firstBootStart);
    try {
      return await bootOnce({ resolved, profile, qemuPath, deviceModule, kernel, initramfs, prepareMs, timeoutMs: msLeft, attempt });
    } catch (err) {
      const hung = err instanceof GuestError && err.code === TestVmErrorCode.BOOT_HUNG;
      if (!hung || !shouldBootAgain(attempt, resolved.timeoutMs - (performance.now() - firstBootStart))) throw err;
      // Said where CI logs show it: a hang we booted past is still worth knowing about.
      process.stderr.write(`testvm: ${err.message}; booting it again (attempt ${attempt + 1} of ${MAX_BOOT_ATTEMPTS})\n`);
    }
  }
}

interface BootInput {
  readonly resolved: ResolvedOptions;
  readonly profile: ArchProfile;
  readonly qemuPath: string;
  readonly deviceModule: Awaited<ReturnType<typeof loadDeviceModule>> | undefined;
  readonly kernel: GuestKernel;
  readonly initramfs: Initramfs;
  readonly prepareMs: number;
  /** What is left of the caller's timeoutMs for this boot. */
  readonly timeoutMs: number;
  /** 1 for the first boot; more after a boot that hung. */
  readonly attempt: number;
}

/**
 * One boot: a temp folder, the vsock device (unless the caller brought one), QEMU, the
 * handshake. A guest kernel that says it hung (bootHangLine) is killed at once and fails
 * with BOOT_HUNG, which startVm may boot past; every other failure is final.
 */
async function bootOnce(input: BootInput): Promise<Vm> {
  const { resolved, profile, qemuPath, deviceModule, kernel, initramfs, prepareMs } = input;
  const { signal } = resolved;
  const tmpDir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-'));
  // The vhost-user chardev is a client: the device must listen before QEMU starts.
  // A caller's device stays the caller's: testvm never closes it.
  let device: VsockDeviceHandle | undefined = resolved.vsock?.device;
  const ownsDevice = device === undefined && resolved.vsock !== undefined;
  if (deviceModule !== undefined && resolved.vsock !== undefined) {
    try {
      device = await deviceModule.createVsockDevice({
        socket: join(tmpDir, 'vsock-device.sock'),
        udsPath: join(tmpDir, 'vsock.sock'),
        guestCid: resolved.vsock.guestCid,
      });
    } catch (err) {
      await rm(tmpDir, { recursive: true, force: true });
      throw err;
    }
  }
  const vsockDriverReady = device === undefined ? undefined : driverReady(device);
  const closeOwnDevice = async (): Promise<void> => {
    if (ownsDevice) await device?.close();
  };
  const ports = new Map(resolved.ports.map((name, i) => [name, join(tmpDir, `port${i}.sock`)]));
  const paths = { tmpDir, consoleLog: join(tmpDir, 'console.log'), resultLog: join(tmpDir, 'result.log'), ports };
  const controlSocket = join(tmpDir, 'control.sock');
  const args = qemuArgs({
    profile,
    accel: resolved.accel,
    kernel: kernel.image,
    initrd: initramfs.path,
    memoryMiB: resolved.memoryMiB,
    cpus: resolved.cpus,
    consoleLog: paths.consoleLog,
    resultLog: paths.resultLog,
    controlSocket,
    ports: [...ports].map(([name, socketPath]) => ({ name, socketPath })),
    shares: resolved.shares.map((s) => ({ tag: s.tag, hostPath: s.path, readOnly: resolved.shareReadOnly })),
    ...(device === undefined ? {} : { vsock: { deviceSocket: device.socket } }),
    ...(resolved.machine === 'microvm' ? { microvm: { tscKhz: await hostTscKhz() } } : {}),
  });

  const bootStart = performance.now();
  let qemu: SupervisedQemu;
  try {
    qemu = await SupervisedQemu.start(qemuPath, args, tmpDir);
  } catch (err) {
    await closeOwnDevice();
    throw err;
  }
  let waitingFor = 'the guest';
  let vm: Vm | undefined;
  let failure: Error | undefined;
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      failure ??= testVmError(TestVmErrorCode.BOOT_TIMEOUT, `${waitingFor} was not ready within ${resolved.timeoutMs} ms`);
      qemu.kill();
    },
    Math.max(0, input.timeoutMs),
  );
  let hangLine: string | undefined;
  const stopWatching = watchForBootHang(paths.consoleLog, (line) => {
    hangLine = line;
    failure ??= testVmError(TestVmErrorCode.BOOT_HUNG, `the guest kernel hung while booting (boot ${input.attempt}): "${line}"`);
    qemu.kill();
  });
  const onAbort = (): void => {
    failure ??= abortError(signal);
    qemu.kill();
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  let control: ControlChannel | undefined;
  try {
    const stopped = new Promise<never>((_, reject) => {
      void qemu.exited.then(() => reject(failure ?? new Error('QEMU stopped before the guest was ready')));
    });
    stopped.catch(() => {}); // awaited below; may settle while nothing awaits it yet
    const socket = await connectWhenListening(controlSocket, () => failure === undefined && !qemu.hasExited);
    if (socket === undefined) return await stopped;
    const handshake = readyHandshake(socket, (message) => vm?.handleMessage(message));
    control = handshake.control;
    control.send({
      type: 'config',
      shares: resolved.shares.map((s) => ({ tag: s.tag, path: s.path, readOnly: resolved.shareReadOnly })),
      ports: resolved.ports,
      outputCap: resolved.maxOutputBytes,
    });
    const info = await Promise.race([handshake.ready, stopped]);
    if (vsockDriverReady !== undefined) {
      // Host clients of vm.vsockPath are refused until the guest driver runs the rings.
      waitingFor = "the guest's virtio vsock driver (vmw_vsock_virtio_transport)";
      await Promise.race([vsockDriverReady, stopped]);
    }
    vm = new Vm(qemu, control, resolved, paths, info, { prepareMs, bootMs: performance.now() - bootStart, bootAttempts: input.attempt }, device && { device, owned: ownsDevice });
    return vm;
  } catch (err) {
    const exit = qemu.hasExited ? await qemu.exited : undefined;
    const tail = await readTail(paths.consoleLog);
    const qemuLog = (await readTail(join(tmpDir, 'qemu.log'), 2048)).trim();
    const resultLog = (await readTail(paths.resultLog, 2048)).trim();
    control?.close();
    await qemu.release();
    await closeOwnDevice();
    if (failure !== undefined && (failure.name === 'AbortError' || timedOut || hangLine !== undefined)) {
      if (failure.name === 'AbortError') throw failure;
      throw new GuestError((failure as VmlinkError).code as TestVmErrorCode, failure.message, tail);
    }
    const reasons = [
      (err as Error).message,
      exit === undefined ? '' : describeQemuExit(exit),
      qemuLog === '' ? '' : `QEMU said: ${qemuLog}`,
      resultLog === '' ? '' : `guest result port: ${resultLog}`,
    ].filter((r) => r !== '');
    throw new GuestError(TestVmErrorCode.BOOT_FAILED, `the guest failed to boot: ${reasons.join('; ')}`, tail, { cause: err });
  } finally {
    clearTimeout(timer);
    stopWatching();
    signal?.removeEventListener('abort', onAbort);
  }
}
