// Runs INSIDE the guest (node:test): the transport compliance suite over vsock, dialing
// the HOST (CID 2) through the virtio-vsock device, where the host runs the compliance
// peer on an hvsock: listener (<vsockPath>_PORT). The suite's own listeners are guest
// vsock listeners dialed over CID 1 loopback.
import * as nodeTest from 'node:test';
import { fileURLToPath } from 'node:url';

import { describeTransportCompliance } from '@vmlink/compliance/transport';
import { vsock } from '@vmlink/transport-vsock';

const transport = vsock();
const HOST = 2;
const LOCAL = 1;
const hostPort = Number(process.env.VMLINK_HOST_PEER_PORT);
const nobodyPort = Number(process.env.VMLINK_HOST_NOBODY_PORT);
if (!Number.isInteger(hostPort) || !Number.isInteger(nobodyPort)) throw new Error('VMLINK_HOST_PEER_PORT / VMLINK_HOST_NOBODY_PORT not set');
const portOf = (uri) => transport.parse(uri).port;

describeTransportCompliance(
  {
    transport,
    // The peer runs on the host; closing it is the host test's job.
    startPeer: async () => ({ address: `vsock://${HOST}:${hostPort}`, close: async () => {} }),
    listenAddress: () => 'vsock://any:any',
    dialAddressOf: (listener) => `vsock://${LOCAL}:${portOf(listener.address())}`,
    // Nobody listens on <vsockPath>_nobodyPort on the host: the device answers RST.
    unreachableAddress: () => `vsock://${HOST}:${nobodyPort}`,
    child: { module: '@vmlink/transport-vsock', factory: 'vsock', cwd: fileURLToPath(new URL('.', import.meta.url)) },
    timeoutMs: 240_000,
  },
  nodeTest,
);
