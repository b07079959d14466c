/**
 * The transport-level limits in a real guest (one QEMU TCG guest for the file):
 * - over vsock (CID 1 loopback, guest-side clients): CIDs other than the host refused by
 *   default and admitted with --allow-cid 1, the connection cap, the idle timeout,
 *   unread replies with bounded agent memory (test/guest/limits.test.mjs, node:test);
 * - over virtio-serial (the host end of QEMU's chardev socket, clients here): the idle
 *   timeout and unread replies. A port carries one connection at a time, so the cap has
 *   nothing to bite on there.
 * Waits are on events and the agent's log; nothing depends on the guest's speed.
 */
import { fileURLToPath } from 'node:url';
import { encodeFrame, RpcPeer } from '@vmlink/rpc';
import { loadInstalledTransports, type Transports } from '@vmlink/transport';
import { runGuestNodeTest, startVm, type Vm } from '@vmlink/testvm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeReason } from './helpers.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const GUEST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const GUEST_TESTS = fileURLToPath(new URL('./guest/limits.test.mjs', import.meta.url));
const PORT = 'org.vmlink.limits.0';
const LOG = '/tmp/vmlink-limits-agent.log';
const PID = '/tmp/vmlink-limits-agent.pid';

describe('vmlink-guest limits in a QEMU guest', () => {
  let vm: Vm | undefined;
  let transports: Transports;

  const guest = (): Vm => {
    if (!vm) throw new Error('the guest did not boot');
    return vm;
  };
  const agentLog = async (): Promise<string> => (await guest().run('cat', [LOG])).stdout;
  const agentRssKiB = async (): Promise<number> => {
    const status = await guest().run('sh', ['-c', `cat /proc/$(cat ${PID})/status`]);
    return Number(/VmRSS:\s+(\d+)/.exec(status.stdout)?.[1] ?? Number.NaN);
  };
  // The dial includes the agent's hello, which comes only once the agent has torn down the
  // previous connection (after a flood: ~18 MB of pings to discard). A liveness bound for a
  // TCG guest on a loaded 2-core host (CI once needed more than 30 s), not a speed check.
  const dialPort = async (): Promise<RpcPeer> => {
    const peer = new RpcPeer(await transports.dial(`virtio-serial+unix:${guest().portPath(PORT)}`, { timeout: 120_000 }));
    peer.on('warning', () => undefined);
    return peer;
  };

  beforeAll(async () => {
    ({ transports } = await loadInstalledTransports());
    vm = await startVm({ share: repoRoot, ports: [PORT], memoryMiB: 1024, cpus: 2 });
    const agent = ['node', GUEST_CLI, '--listen', `virtio-serial:${PORT}`, '--json', '--idle-timeout', '5000'].join(' ');
    const script = `(setsid ${agent} >${LOG} 2>&1 </dev/null & echo $! >${PID})
for i in $(seq 1 600); do grep -q '"msg":"ready"' ${LOG} && exit 0; sleep 0.1; done; exit 1`;
    const started = await vm.run('sh', ['-c', script], { timeoutMs: 90_000 });
    if (started.exitCode !== 0) throw new Error(`agent did not start in the guest:\n${await agentLog()}`);
  }, 240_000);

  afterAll(async () => {
    await vm?.stop();
  });

  it('over vsock inside the guest: CID policy, connection cap, idle timeout, unread replies', async () => {
    const result = await runGuestNodeTest(guest(), GUEST_TESTS, { cwd: repoRoot, timeoutMs: 300_000 });
    expect(result.exitCode, result.output).toBe(0);
  }, 320_000);

  it('over virtio-serial: a silent host connection is closed with ERR_VMLINK_IDLE_TIMEOUT, the next one is served', async () => {
    const silent = await dialPort();
    expect(await closeReason(silent)).toBe('ERR_VMLINK_IDLE_TIMEOUT');
    const next = await dialPort();
    expect(await next.call('ping', {}, { timeout: 60_000 })).toMatchObject({ pong: true });
    await next.close();
  }, 180_000);

  it('over virtio-serial: pipelined pings never read back keep the agent memory bounded', async () => {
    const before = await agentRssKiB();
    const connection = await transports.dial(`virtio-serial+unix:${guest().portPath(PORT)}`, { timeout: 30_000 });
    connection.on('error', () => undefined);
    connection.pause(); // never read
    const ping = Buffer.concat(encodeFrame({ type: 'REQUEST', id: 7, method: 'ping', params: {}, stream: undefined }));
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
    for (let i = 0; i < 100; i += 1) connection.write(batch); // ~18 MB, buffered on our side
    let peak = 0;
    for (let i = 0; i < 10; i += 1) peak = Math.max(peak, (await agentRssKiB()) - before);
    expect(peak, await agentLog()).toBeLessThan(64 * 1024);
    connection.destroy();
    const next = await dialPort();
    expect(await next.call('ping', {}, { timeout: 60_000 })).toMatchObject({ pong: true });
    await next.close();
  }, 180_000);
});
