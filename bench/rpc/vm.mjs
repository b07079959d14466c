#!/usr/bin/env node
// The same RPC-vs-raw-echo table over vsock loopback (CID 1), measured INSIDE a QEMU guest
// (this machine cannot carry vsock traffic itself). Boots one guest with @vmlink/testvm,
// runs bench/rpc/run.mjs there, prints its table. TCG guests are slow: compare the
// ratio column, not the absolute rates, with the host's unix numbers.
//
//   node bench/rpc/vm.mjs [--seconds 3]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startVm } from '@vmlink/testvm';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const vm = await startVm({ share: repoRoot, memoryMiB: 1024, cpus: 2 });
try {
  const result = await vm.run('node', ['bench/rpc/run.mjs', '--transport', 'vsock', '--seconds', args.seconds, '--warm-up', '5'], {
    cwd: repoRoot,
    timeoutMs: 600_000,
  });
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exitCode = result.exitCode;
} finally {
  await vm.stop();
}
