/**
 * `npm run demo:vm`: the demo's story against an agent inside a throwaway QEMU guest
 * (@vmlink/testvm) with a real host<->guest vsock device (@vmlink/vhost-user-vsock).
 * The host CLI reaches the agent over hybrid vsock (`hvsock:<vm.vsockPath>:1024`, the
 * way Firecracker and Cloud Hypervisor expose a guest's vsock) as the main path, and over
 * virtio-serial as the second; inside the guest a third client uses vsock loopback (CID 1).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadInstalledTransports } from '@vmlink/transport';
import { GUEST_CLI, HOST_CLI, REPO_ROOT, Story, bold, dim, rate, red } from './demo-kit.js';
import { DEMO_FILE_MIB, runAgentStory } from './demo-steps.js';
import { ExitCode } from '../src/exit-codes.js';
import { loadTestVm, type GuestVm, type TestVmModule } from '../src/testvm.js';

export const AGENT_PORT = 'org.vmlink.agent.0';
export const AGENT_VSOCK_PORT = 1024;
export const AGENT_ROOT = '/tmp/agent-root';
const AGENT_LOG = '/tmp/vmlink-agent.log';
const AGENT_PID = '/tmp/vmlink-agent.pid';
/** A guest vsock port nothing listens on. */
const CLOSED_VSOCK_PORT = 4444;

type Vm = GuestVm;

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/**
 * Starts the agent in the guest (virtio-serial and `vsock://any:1024`), detached, and
 * waits for its 'ready' log line. By default the agent takes vsock peers only from the
 * host (CID 2); `extraArgs` can widen that (`--allow-cid 2,1`).
 */
export async function startGuestAgent(vm: Vm, extraArgs: readonly string[] = []): Promise<{ ok: boolean; log: string }> {
  const agent = [
    process.execPath, GUEST_CLI,
    '--listen', `virtio-serial:${AGENT_PORT}`, '--listen', `vsock://any:${AGENT_VSOCK_PORT}`,
    '--root', AGENT_ROOT, '--allow-exec', 'uname,echo', ...extraArgs,
  ].join(' ');
  const script = `mkdir -p ${AGENT_ROOT}/demo && (setsid ${agent} >${AGENT_LOG} 2>&1 </dev/null & echo $! >${AGENT_PID})
for i in $(seq 1 300); do grep -q ' ready ' ${AGENT_LOG} && exit 0; sleep 0.2; done; exit 1`;
  const result = await vm.run('sh', ['-c', script], { timeoutMs: 90_000 });
  const log = await vm.run('cat', [AGENT_LOG]);
  return { ok: result.exitCode === 0, log: log.stdout };
}

export async function stopGuestAgent(vm: Vm, signal: 'TERM' | 'KILL' = 'TERM'): Promise<boolean> {
  const script = `pid=$(cat ${AGENT_PID}); kill -${signal} $pid || exit 1
for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1`;
  return (await vm.run('sh', ['-c', script], { timeoutMs: 30_000 })).exitCode === 0;
}

/** What must be built or installed before the guest is booted; each problem says how to fix it. */
async function missingPieces(): Promise<{ problems: string[]; testvm: TestVmModule | undefined }> {
  const problems: string[] = [];
  if (!existsSync(GUEST_CLI)) problems.push(`the guest agent is not built (${GUEST_CLI}): run npm run build -w vmlink-guest`);
  const { failures } = await loadInstalledTransports();
  for (const { plugin, error } of failures) {
    if (['@vmlink/transport-hvsock', '@vmlink/transport-virtio-serial'].includes(plugin)) {
      problems.push(`the host CLI cannot load ${plugin}: ${error.message} (run npm run build -w ${plugin})`);
    }
  }
  let testvm: TestVmModule | undefined;
  try {
    testvm = await loadTestVm();
  } catch (error) {
    problems.push(`@vmlink/testvm cannot be loaded: ${(error as Error).message} (run npm run build -w @vmlink/testvm)`);
  }
  return { problems, testvm };
}

/** A boot failure as a person can act on it: the code and testvm's message (which names the fix). */
function bootFailure(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return `${typeof code === 'string' ? `[${code}] ` : ''}${(error as Error).message}`;
}

async function main(): Promise<number> {
  const story = new Story();
  process.stdout.write(
    `${bold('vmlink demo:vm')}: an agent in a QEMU guest; the host CLI reaches it over vsock ` +
      `(hybrid vsock, hvsock:) and over virtio-serial\n`,
  );
  const { problems, testvm } = await missingPieces();
  if (problems.length > 0 || !testvm) {
    process.stderr.write(`${red('demo:vm cannot start:')}\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
    return 1;
  }

  story.heading('boot a throwaway guest with a virtio-vsock device (QEMU TCG: this takes a while)');
  story.say(dim('the device is @vmlink/vhost-user-vsock, served from this process over vhost-user; on the host it'));
  story.say(dim('shows up as one Unix socket, like Firecracker\'s: connect, write "CONNECT <port>", get "OK", then bytes'));
  let vm: Vm;
  try {
    vm = await testvm.startVm({ share: REPO_ROOT, ports: [AGENT_PORT], memoryMiB: 1024, timeoutMs: 180_000, vsock: true });
  } catch (error) {
    story.check(false, `guest booted: ${bootFailure(error)}`);
    return story.summary();
  }
  const workDir = await mkdtemp(path.join(tmpdir(), 'vmlink-demo-vm-'));
  try {
    const vsockPath = vm.vsockPath;
    story.check(vsockPath !== undefined, `guest booted in ${(vm.timings.bootMs / 1000).toFixed(1)} s, kernel ${vm.info.release}`);
    if (vsockPath === undefined) return story.summary();
    story.say(`guest CID ${vm.guestCid ?? '?'}; its vsock on the host: ${vsockPath}`);
    story.say(`virtio-serial port ${AGENT_PORT}; its host socket: ${vm.portPath(AGENT_PORT)}`);

    story.heading('start vmlink-guest inside the guest');
    // Vsock peers are refused unless their CID is allowed: 2 is the host (what hvsock:
    // connections come from), 1 the guest itself (the in-guest client at the end).
    const started = await startGuestAgent(vm, ['--allow-cid', '2,1']);
    story.say(`${dim('guest$')} vmlink-guest --listen virtio-serial:${AGENT_PORT} --listen vsock://any:${AGENT_VSOCK_PORT} --root ${AGENT_ROOT} --allow-exec uname,echo --allow-cid 2,1`);
    story.say(dim(indent(started.log)));
    story.check(started.ok, 'agent ready in the guest');
    if (!started.ok) return story.summary();

    const hvsockUri = `hvsock:${vsockPath}:${AGENT_VSOCK_PORT}`;
    const serialUri = `virtio-serial+unix:${vm.portPath(AGENT_PORT)}`;
    story.say(`\n${bold('main path')}: host -> guest over vsock, ${hvsockUri}`);
    const guestSha = async (remotePath: string): Promise<string | undefined> =>
      (await vm.run('sha256sum', [`${AGENT_ROOT}${remotePath}`])).stdout.split(' ')[0];
    const overVsock = await runAgentStory(story, hvsockUri, workDir, { remoteSha256: guestSha });

    story.heading(`a guest vsock port nobody listens on (${CLOSED_VSOCK_PORT})`);
    story.say(dim('the guest answers the connect with a reset; the device closes the host socket before "OK"'));
    await story.cli(['ping', `hvsock:${vsockPath}:${CLOSED_VSOCK_PORT}`], ExitCode.UNREACHABLE, 'refused: nothing listens there');

    story.say(`\n${bold('second path')}: the same agent over virtio-serial, ${serialUri}`);
    story.heading('ping and list over virtio-serial');
    await story.cli(['ping', serialUri, '--count', '3'], ExitCode.OK, 'three round trips');
    await story.cli(['ls', serialUri, '/demo'], ExitCode.OK, 'the file uploaded over vsock is there');
    story.heading(`the same ${DEMO_FILE_MIB} MiB file up and down over virtio-serial`);
    const bytes = DEMO_FILE_MIB * 1024 * 1024;
    const up = await story.timedCli(['cp', path.join(workDir, 'original.bin'), `${serialUri}:/demo/via-serial.bin`], ExitCode.OK, 'upload verified by SHA-256 on both ends');
    story.say(`upload: ${rate(bytes, up.ms)}`);
    story.check((await guestSha('/demo/via-serial.bin')) === (await guestSha('/demo/big.bin')), 'the guest holds the same bytes as the copy that came over vsock');
    const viaSerial = path.join(workDir, 'via-serial.bin');
    const down = await story.timedCli(['cp', `${serialUri}:/demo/big.bin`, viaSerial], ExitCode.OK, 'download verified by SHA-256');
    story.say(`download: ${rate(bytes, down.ms)}`);
    const serialUploadMs = up.code === ExitCode.OK ? up.ms : undefined;
    const serialDownloadMs = down.code === ExitCode.OK ? down.ms : undefined;

    story.heading('inside the guest: a third client over vsock loopback (CID 1)');
    for (const args of [['ping', `vsock://1:${AGENT_VSOCK_PORT}`, '--count', '3'], ['info', `vsock://1:${AGENT_VSOCK_PORT}`]]) {
      story.say(`${dim('guest$')} vmlink ${args.join(' ')}`);
      const result = await vm.run(process.execPath, [HOST_CLI, ...args], { timeoutMs: 60_000 });
      story.say(indent(result.stdout + result.stderr));
      story.check(result.exitCode === 0, `${args[0]} over vsock inside the guest, allowed by --allow-cid 1 (exit code ${result.exitCode})`);
    }

    story.heading('stop the agent (SIGTERM) and show its request log (peer = vsock://CID:PORT or the serial port)');
    story.check(await stopGuestAgent(vm), 'agent exited');
    const log = (await vm.run('cat', [AGENT_LOG])).stdout;
    story.say(dim(indent(log.split('\n').filter((line) => !/ info (dis)?connected /.test(line)).join('\n'))));

    story.heading(`the numbers: ${DEMO_FILE_MIB} MiB through the CLI (one TCG guest on a shared machine: compare, do not quote)`);
    const row = (what: string, ms: number | undefined): string => `  ${what.padEnd(28)} ${ms === undefined ? 'failed' : rate(bytes, ms)}`;
    story.say(row('upload over vsock (hvsock:)', overVsock.uploadMs));
    story.say(row('upload over virtio-serial', serialUploadMs));
    story.say(row('download over vsock', overVsock.downloadMs));
    story.say(row('download over virtio-serial', serialDownloadMs));
  } finally {
    await vm.stop();
    await rm(workDir, { recursive: true, force: true });
  }
  return story.summary();
}

// Only run when executed, not when a test imports the helpers above.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`demo:vm: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
