import { afterAll, beforeAll, describe } from 'vitest';
import * as vitest from 'vitest';
import { describeTransportCompliance } from '@vmlink/compliance/transport';
import { startVm, type Vm } from '@vmlink/testvm';
import { virtioSerial } from '../src/index.js';
import { startStalledSocket } from './helpers/stalled.js';
import { BOOT_TIMEOUT_MS, repoRoot, startGuestServer, type GuestServer } from './helpers/vm.js';

// The transport compliance suite host<->guest: the suite dials from this process through
// QEMU's chardev socket; the peer listens on /dev/virtio-ports/NAME inside the guest.
const PORT = 'org.vmlink.vs.compliance';
let vm: Vm | undefined;
let server: GuestServer | undefined;

describe('virtio-serial host<->guest (one VM)', () => {
  beforeAll(async () => {
    vm = await startVm({ share: repoRoot, ports: [PORT] });
    server = await startGuestServer(vm, PORT);
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    await server?.stop();
    await vm?.stop();
  }, 30_000);

  describeTransportCompliance(
    {
      transport: virtioSerial({ side: 'host' }),
      startPeer: async () => {
        if (!vm) throw new Error('the VM did not boot');
        return { address: `virtio-serial+unix:${vm.portPath(PORT)}`, close: async () => {} };
      },
      unreachableAddress: () => 'virtio-serial+unix:/nonexistent/vmlink/chardev.sock',
      stalledAddress: startStalledSocket,
      child: { module: '@vmlink/transport-virtio-serial', factory: 'virtioSerial', args: [{ side: 'host' }] },
      timeoutMs: 120_000,
    },
    vitest,
  );
});
