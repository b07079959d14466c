import * as vitest from 'vitest';
import { describeTransportCompliance, servePeer } from '@vmlink/compliance/transport';
import { VirtioSerialListener } from '../src/guest-listener.js';
import { virtioSerial } from '../src/index.js';
import { startFakePort, type FakePort } from './helpers/fake-port.js';
import { startStalledSocket } from './helpers/stalled.js';

// The compliance suite on the host, with the guest side on a socketpair behind a fake
// QEMU socket (real fds, the real native FdStream). The same suite runs host<->guest in
// vm.compliance.vm.test.ts; this one runs in seconds and on every machine.
const host = virtioSerial({ side: 'host' });
const guest = virtioSerial({ side: 'guest' });
let port: FakePort | undefined;

describeTransportCompliance(
  {
    transport: host,
    startPeer: async () => {
      port = await startFakePort();
      const listener = new VirtioSerialListener(guest, port.guestFd, 'virtio-serial:fake');
      servePeer(listener);
      const address = `virtio-serial+unix:${port.socketPath}`;
      return { address, close: async () => (await listener.close(), await port?.close()) };
    },
    unreachableAddress: () => 'virtio-serial+unix:/nonexistent/vmlink/chardev.sock',
    stalledAddress: startStalledSocket,
    child: { module: '@vmlink/transport-virtio-serial', factory: 'virtioSerial', args: [{ side: 'host' }] },
    timeoutMs: 30_000,
  },
  vitest,
);
