/**
 * examples/transport-tcp, written from the plugin guide, passes the transport compliance
 * suite like a first-party plugin (loopback only).
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as vitest from 'vitest';
import { describeTransportCompliance, startLocalPeer } from '@vmlink/compliance/transport';
import type { Transport } from '@vmlink/transport';

const EXAMPLE = path.join(fileURLToPath(new URL('../../..', import.meta.url)), 'examples/transport-tcp/index.js');
const { tcp } = (await import(EXAMPLE)) as { tcp: () => Transport };
const transport = tcp();
const fresh = (): string => 'tcp://127.0.0.1:0';

describeTransportCompliance(
  {
    transport,
    startPeer: () => startLocalPeer(transport, fresh()),
    listenAddress: fresh,
    // Port 1 (tcpmux) is not served on loopback here: a refused dial.
    unreachableAddress: () => 'tcp://127.0.0.1:1',
    child: { module: pathToFileURL(EXAMPLE).href, factory: 'tcp' },
  },
  vitest,
);
