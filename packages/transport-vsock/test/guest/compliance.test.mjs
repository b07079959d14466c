// Runs INSIDE the QEMU guest (node:test), where AF_VSOCK loopback (CID 1) works: the
// transport compliance suite against vsock, dialing vsock://1:PORT.
import * as nodeTest from 'node:test';
import { fileURLToPath } from 'node:url';

import { describeTransportCompliance, servePeer } from '@vmlink/compliance/transport';
import { vsock } from '@vmlink/transport-vsock';

const transport = vsock();
const LOCAL = 1;
const portOf = (uri) => transport.parse(uri).port;

describeTransportCompliance(
  {
    transport,
    async startPeer() {
      const listener = await transport.listen('vsock://any:any');
      servePeer(listener);
      return { address: `vsock://${LOCAL}:${portOf(listener.address())}`, close: () => listener.close() };
    },
    listenAddress: () => 'vsock://any:any',
    dialAddressOf: (listener) => `vsock://${LOCAL}:${portOf(listener.address())}`,
    // Nobody listens on this port in the guest: the loopback transport resets the connect.
    unreachableAddress: () => `vsock://${LOCAL}:${0x7ffe_0001}`,
    child: { module: '@vmlink/transport-vsock', factory: 'vsock', cwd: fileURLToPath(new URL('.', import.meta.url)) },
    timeoutMs: 120_000,
  },
  nodeTest,
);
