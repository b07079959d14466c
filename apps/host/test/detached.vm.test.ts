/**
 * Detached processes in a real guest: vmlink-guest in a @vmlink/testvm QEMU guest listening
 * on vsock and on a virtio-serial port, the vmlink CLI on the host over hvsock: (the VMM's
 * hybrid-vsock socket) and over virtio-serial (QEMU's chardev socket). A detached command
 * outlives the attach that watched it, a second attach continues, ps and wait report its
 * exit status, kill reaches its process group. One guest boot, one agent, both transports.
 * A killed attach client is killed only once the agent has its acknowledgement of what it
 * printed (ps: delivered): the agent may go on sending into its dead connection for a
 * moment, and only acknowledged bytes move where the next attach continues.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DetachedListResult } from '@vmlink/agent-protocol';
import { loadTestVm, type GuestVm } from '../src/testvm.js';
import { GUEST_CLI, HOST_CLI, runVmlink } from './helpers.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const LOG = '/tmp/vmlink-agent.log';
const AGENT_PORT = 1024;
const GO = '/tmp/detached-go';
const PORT = 'org.vmlink.agent.0';

describe('detached processes in a QEMU guest over vsock (hvsock: on the host)', () => {
  let vm: GuestVm;
  let uri: string;
  let serialUri: string;

  const guestLog = async (): Promise<string> => (await vm.run('cat', [LOG])).stdout;

  /** Until the agent (asked over vsock) says an attach client acknowledged `bytes` of stdout. */
  const untilDelivered = async (id: string, bytes: number): Promise<void> => {
    for (let tries = 0; ; tries += 1) {
      const listed = await runVmlink(['ps', uri, '--json']);
      const delivered = listed.code === 0 ? (JSON.parse(listed.stdout) as DetachedListResult).processes.find((p) => p.id === id)?.stdout.delivered : undefined;
      if (delivered === bytes) return;
      if (tries === 100) throw new Error(`stdout of ${id}: delivered ${delivered}, never ${bytes}: ${listed.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  beforeAll(async () => {
    vm = await (await loadTestVm()).startVm({ share: repoRoot, ports: [PORT], memoryMiB: 1024, timeoutMs: 240_000, vsock: true });
    if (vm.vsockPath === undefined) throw new Error('startVm({ vsock: true }) gave no vsockPath');
    uri = `hvsock:${vm.vsockPath}:${AGENT_PORT}`;
    serialUri = `virtio-serial+unix:${vm.portPath(PORT)}`;
    const agent = ['node', GUEST_CLI, '--listen', `vsock://any:${AGENT_PORT}`, '--listen', `virtio-serial:${PORT}`, '--aio', 'fs', '--allow-exec', 'sh,sleep'].join(' ');
    const script = `(setsid ${agent} >${LOG} 2>&1 </dev/null &)
for i in $(seq 1 600); do grep -q ' ready ' ${LOG} && exit 0; sleep 0.2; done; exit 1`;
    const started = await vm.run('sh', ['-c', script], { timeoutMs: 180_000 });
    if (started.exitCode !== 0) throw new Error(`agent did not start in the guest:\n${await guestLog()}`);
  }, 480_000);

  afterAll(async () => {
    await vm?.stop();
  });

  it('detach, attach, lose the client, attach again: the rest of the output and the exit status; ps, wait, kill', async () => {
    const started = await runVmlink(['exec', '--detach', uri, '--', 'sh', '-c', `echo a; while [ ! -e ${GO} ]; do sleep 0.05; done; echo b; exit 3`]);
    expect(started.code, `${started.stderr}\n${await guestLog()}`).toBe(0);
    const id = started.stdout.trim();
    // The first attach sees "a", then its process (and its vsock connection) dies.
    const first = spawn(process.execPath, [HOST_CLI, 'attach', uri, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      first.stdout.setEncoding('utf8').on('data', (t: string) => {
        seen += t;
        if (seen.includes('a\n')) resolve();
      });
      first.on('close', (code) => reject(new Error(`attach ended (${code}) before 'a': ${seen}`)));
    });
    // Killed once the agent has the acknowledgement of "a": what it sends after that (to a
    // client it may not know is dead yet) is not acknowledged, so the next attach shows it.
    await untilDelivered(id, 2);
    first.kill('SIGKILL');
    await vm.run('touch', [GO]);
    const again = await runVmlink(['attach', uri, id]);
    expect(again.code, again.stderr).toBe(3);
    expect(again.stdout).toBe('b\n');
    const list = await runVmlink(['ps', uri, '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as DetachedListResult).processes.find((p) => p.id === id)).toMatchObject({ state: 'exited', exitCode: 3 });
    expect((await runVmlink(['wait', uri, id])).code).toBe(3);

    const sleeper = (await runVmlink(['exec', '--detach', uri, '--', 'sh', '-c', 'sleep 300 & wait'])).stdout.trim();
    // --timeout also bounds the connect, which also exits 75: long enough for a loaded
    // guest, and the message tells "still running" from "could not connect".
    const stillRunning = await runVmlink(['wait', uri, sleeper, '--timeout', '3s']);
    expect(stillRunning.code, stillRunning.stderr).toBe(75);
    expect(stillRunning.stderr).toMatch(/is still running after 3000 ms/);
    expect((await runVmlink(['kill', uri, sleeper])).code).toBe(0);
    // SIGTERM to the group: sh dies of it (143); the sleep in its group too (nothing left).
    expect((await runVmlink(['wait', uri, sleeper])).code).toBe(143);
    const left = await vm.run('sh', ['-c', 'ps -o pid,args 2>/dev/null | grep "[s]leep 300" || true']);
    expect(left.stdout).toBe('');
  });

  it('over virtio-serial: detach, attach, drop the client (its process killed), attach again for the rest and the exit status; --from-start; ps, wait, kill', async () => {
    const go = '/tmp/detached-go-serial';
    const started = await runVmlink(['exec', '--detach', serialUri, '--', 'sh', '-c', `echo a; while [ ! -e ${go} ]; do sleep 0.05; done; echo b; exit 3`]);
    expect(started.code, `${started.stderr}\n${await guestLog()}`).toBe(0);
    const id = started.stdout.trim();
    // The first attach sees "a", then its process dies: QEMU closes the port's host side
    // and the guest sees the hang-up (nothing is sent to say goodbye).
    const first = spawn(process.execPath, [HOST_CLI, 'attach', serialUri, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    const firstClosed = new Promise<void>((resolve) => first.on('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      first.stdout.setEncoding('utf8').on('data', (t: string) => {
        seen += t;
        if (seen.includes('a\n')) resolve();
      });
      first.on('close', (code) => reject(new Error(`attach ended (${code}) before 'a': ${seen}`)));
    });
    // Asked over vsock: the port has one host at a time, and the first attach holds it.
    await untilDelivered(id, 2);
    first.kill('SIGKILL');
    await firstClosed;
    await vm.run('touch', [go]);
    // One host at a time on the port: this attach is the port's next client.
    const again = await runVmlink(['attach', serialUri, id]);
    expect(again.code, `${again.stderr}\n${await guestLog()}`).toBe(3);
    expect(again.stdout).toBe('b\n');
    const replay = await runVmlink(['attach', serialUri, id, '--from-start']);
    expect(replay.code, replay.stderr).toBe(3);
    expect(replay.stdout).toBe('a\nb\n');
    const list = await runVmlink(['ps', serialUri, '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as DetachedListResult).processes.find((p) => p.id === id)).toMatchObject({ state: 'exited', exitCode: 3 });
    expect((await runVmlink(['wait', serialUri, id])).code).toBe(3);
    // The same agent behind both transports: the process is known over vsock too.
    expect((await runVmlink(['wait', uri, id])).code).toBe(3);

    const sleeper = (await runVmlink(['exec', '--detach', serialUri, '--', 'sh', '-c', 'sleep 300 & wait'])).stdout.trim();
    // --timeout also bounds the connect, which also exits 75: long enough for a loaded
    // guest, and the message tells "still running" from "could not connect".
    const stillRunning = await runVmlink(['wait', serialUri, sleeper, '--timeout', '3s']);
    expect(stillRunning.code, stillRunning.stderr).toBe(75);
    expect(stillRunning.stderr).toMatch(/is still running after 3000 ms/);
    expect((await runVmlink(['kill', serialUri, sleeper])).code).toBe(0);
    // SIGTERM to the group: sh dies of it (143); the sleep in its group too (nothing left).
    expect((await runVmlink(['wait', serialUri, sleeper])).code).toBe(143);
    const left = await vm.run('sh', ['-c', 'ps -o pid,args 2>/dev/null | grep "[s]leep 300" || true']);
    expect(left.stdout).toBe('');
  }, 240_000);
});
