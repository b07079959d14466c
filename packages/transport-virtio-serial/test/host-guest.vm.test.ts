import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as vitest from 'vitest';
import { describeTransportCompliance } from '@vmlink/compliance/transport';
import { runGuestNodeTest, startVm, type Vm } from '@vmlink/testvm';
import { virtioSerial } from '../src/index.js';
import { startStalledSocket } from './helpers/stalled.js';
import { hangupTests } from './helpers/timing-tests.js';
import { BOOT_TIMEOUT_MS, guestDir, repoRoot, startGuestServer, type GuestServer } from './helpers/vm.js';

// One VM for the whole file. Port A: the compliance peer; port B: the reconnect server;
// port C: nobody's (guest-side listener checks); port D: hang-ups with a write pending or
// a Connection that does not read.
const PORT_COMPLIANCE = 'org.vmlink.vs.compliance';
const PORT_RECONNECT = 'org.vmlink.vs.reconnect';
const PORT_SPARE = 'org.vmlink.vs.spare';
const PORT_HANGUP = 'org.vmlink.vs.hangup';
const host = virtioSerial({ side: 'host' });

let vm: Vm | undefined;
const servers: GuestServer[] = [];

function bootedVm(): Vm {
  if (!vm) throw new Error('the VM did not boot (see beforeAll)');
  return vm;
}

describe('virtio-serial host<->guest (one VM)', () => {
  beforeAll(async () => {
    vm = await startVm({ share: repoRoot, ports: [PORT_COMPLIANCE, PORT_RECONNECT, PORT_SPARE, PORT_HANGUP] });
    servers.push(
      await startGuestServer(vm, PORT_COMPLIANCE),
      await startGuestServer(vm, PORT_RECONNECT),
      await startGuestServer(vm, PORT_HANGUP),
    );
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    for (const server of servers) await server.stop();
    await vm?.stop();
  }, 30_000);

  // The suite dials from this process through QEMU's chardev socket; the peer listens on
  // /dev/virtio-ports/NAME inside the guest.
  describeTransportCompliance(
    {
      transport: host,
      startPeer: async () => ({ address: `virtio-serial+unix:${bootedVm().portPath(PORT_COMPLIANCE)}`, close: async () => {} }),
      unreachableAddress: () => 'virtio-serial+unix:/nonexistent/vmlink/chardev.sock',
      stalledAddress: startStalledSocket,
      child: { module: '@vmlink/transport-virtio-serial', factory: 'virtioSerial', args: [{ side: 'host' }] },
      timeoutMs: 120_000,
    },
    vitest,
  );

  // The hang-up tests (helpers/timing-tests.ts; the arm64 guest runs them too).
  hangupTests(
    host,
    {
      vm: bootedVm,
      reconnectServer: () => ({ server: servers[1] as GuestServer, portPath: bootedVm().portPath(PORT_RECONNECT) }),
      hangupServer: () => ({ server: servers[2] as GuestServer, portPath: bootedVm().portPath(PORT_HANGUP) }),
    },
    { reconnect: 600_000, hangup: 300_000 },
  );

  it('guest-side listener checks (EBUSY, ENOENT, no spin without a host, no leaked handles) pass in the guest', async () => {
    const result = await runGuestNodeTest(bootedVm(), join(guestDir, 'listener.test.mjs'), {
      env: { VS_SPARE_PORT: PORT_SPARE, VS_BUSY_PORT: PORT_COMPLIANCE },
    });
    expect(result.exitCode, result.output).toBe(0);
  }, 180_000);
});
