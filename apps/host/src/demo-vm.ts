/**
 * `npm run demo:vm`: the same story against an agent inside a throwaway QEMU guest
 * (@vmlink/testvm). The host CLI reaches it over virtio-serial; inside the guest a second
 * client reaches the same agent over vsock (CID 1, loopback).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GUEST_CLI, HOST_CLI, REPO_ROOT, Story, bold, dim } from './demo-kit.js';
import { runAgentStory } from './demo-steps.js';
import { loadTestVm, type GuestVm } from './testvm.js';

export const AGENT_PORT = 'org.vmlink.agent.0';
const AGENT_LOG = '/tmp/vmlink-agent.log';
const AGENT_PID = '/tmp/vmlink-agent.pid';

type Vm = GuestVm;

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** Starts the agent in the guest, detached, and waits for its 'ready' log line. */
export async function startGuestAgent(vm: Vm, extraArgs: readonly string[] = []): Promise<{ ok: boolean; log: string }> {
  const agent = [
    process.execPath, GUEST_CLI,
    '--listen', `virtio-serial:${AGENT_PORT}`, '--listen', 'vsock://any:1024',
    '--root', '/tmp/agent-root', '--allow-exec', 'uname,echo', ...extraArgs,
  ].join(' ');
  const script = `mkdir -p /tmp/agent-root/demo && (setsid ${agent} >${AGENT_LOG} 2>&1 </dev/null & echo $! >${AGENT_PID})
for i in $(seq 1 150); do grep -q ' ready ' ${AGENT_LOG} && exit 0; sleep 0.2; done; exit 1`;
  const result = await vm.run('sh', ['-c', script], { timeoutMs: 60_000 });
  const log = await vm.run('cat', [AGENT_LOG]);
  return { ok: result.exitCode === 0, log: log.stdout };
}

export async function stopGuestAgent(vm: Vm, signal: 'TERM' | 'KILL' = 'TERM'): Promise<boolean> {
  const script = `pid=$(cat ${AGENT_PID}); kill -${signal} $pid || exit 1
for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1`;
  return (await vm.run('sh', ['-c', script], { timeoutMs: 30_000 })).exitCode === 0;
}

async function main(): Promise<number> {
  const story = new Story();
  process.stdout.write(`${bold('vmlink demo:vm')}: an agent in a QEMU guest, the CLI on the host over virtio-serial\n`);
  const testvm = await loadTestVm();
  const workDir = await mkdtemp(path.join(tmpdir(), 'vmlink-demo-vm-'));
  story.heading('boot a throwaway guest (QEMU, TCG: this takes a while)');
  const vm = await testvm.startVm({ share: REPO_ROOT, ports: [AGENT_PORT], memoryMiB: 1024, timeoutMs: 180_000 });
  try {
    story.check(true, 'guest booted');
    story.heading('start vmlink-guest inside the guest');
    const started = await startGuestAgent(vm);
    story.say(dim(indent(started.log)));
    story.check(started.ok, 'agent ready in the guest');
    if (started.ok) {
      const uri = `virtio-serial+unix:${vm.portPath(AGENT_PORT)}`;
      await runAgentStory(story, uri, workDir);

      story.heading('inside the guest: a second client over vsock (CID 1)');
      for (const args of [['ping', 'vsock://1:1024', '--count', '3'], ['info', 'vsock://1:1024']]) {
        story.say(`${dim('guest$')} vmlink ${args.join(' ')}`);
        const result = await vm.run(process.execPath, [HOST_CLI, ...args], { timeoutMs: 60_000 });
        story.say(indent(result.stdout + result.stderr));
        story.check(result.exitCode === 0, `${args[0]} over vsock inside the guest (exit code ${result.exitCode})`);
      }

      story.heading('stop the agent (SIGTERM) and show its request log');
      story.check(await stopGuestAgent(vm), 'agent exited');
      story.say(dim(indent((await vm.run('cat', [AGENT_LOG])).stdout)));
    }
  } finally {
    await vm.stop();
    await rm(workDir, { recursive: true, force: true });
  }
  return story.summary();
}

// Only run when executed, not when the test imports the helpers above.
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
