import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vitest from 'vitest';
import { describeTransportCompliance, startLocalPeer } from '@vmlink/compliance/transport';
import { unix } from '@vmlink/transport-unix';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-unix-compliance-'));
let counter = 0;
const fresh = (): string => `unix:${join(dir, `s${counter++}.sock`)}`;
const transport = unix();

describeTransportCompliance(
  {
    transport,
    startPeer: () => startLocalPeer(transport, fresh()),
    listenAddress: fresh,
    unreachableAddress: () => `unix:${join(dir, 'nobody-listens-here.sock')}`,
    child: { module: '@vmlink/transport-unix', factory: 'unix' },
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  },
  vitest,
);

// The abstract namespace has no files: the same suite, with names instead of paths.
const tag = `vmlink-test-${process.pid}`;
let abstractCounter = 0;
const freshAbstract = (): string => `unix:@${tag}-${abstractCounter++}`;
describeTransportCompliance(
  {
    transport,
    startPeer: () => startLocalPeer(transport, freshAbstract()),
    listenAddress: freshAbstract,
    unreachableAddress: () => `unix:@${tag}-nobody`,
    child: { module: '@vmlink/transport-unix', factory: 'unix' },
  },
  vitest,
);
