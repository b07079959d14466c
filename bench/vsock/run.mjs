#!/usr/bin/env node
// AF_VSOCK benchmark inside one throwaway QEMU guest (TCG), CID 1 loopback:
//   throughput  a one-way transfer (default 256 MiB) with @vmlink/vsock, socat -> socat
//               over vsock, and node:net over TCP loopback, all in the same boot
//   latency     1-byte ping-pongs (default 10,000): @vmlink/vsock vs node:net TCP loopback
// Prints a table and writes JSON (bench/results/ is git-ignored).
//
//   npm run build && node bench/vsock/run.mjs [--mib 256] [--round-trips 10000] [--json bench/results/vsock.json]
//
// Targets: throughput >= 0.9x socat; p50 latency within 1.2x of net's. The diagnostic rows
// run the same ping-pong over AF_UNIX (our native FdStream vs node:net) to tell the
// user-space cost apart from the kernel transport's.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startVm } from '@vmlink/testvm';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    'round-trips': { type: 'string', default: '10000' },
    json: { type: 'string', default: 'bench/results/vsock.json' },
    cpus: { type: 'string', default: '2' },
  },
});
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');

const vm = await startVm({ share: repoRoot, withPrograms: ['socat'], memoryMiB: 1024, cpus: Number(args.cpus) });
let measured;
try {
  const run = await vm.run('node', [join(here, 'guest.mjs'), '--mib', args.mib, '--round-trips', args['round-trips']], {
    cwd: here,
    timeoutMs: 1_800_000,
  });
  if (run.exitCode !== 0) throw new Error(`guest bench failed (${run.exitCode}):\n${run.stdout}\n${run.stderr}`);
  measured = JSON.parse(run.stdout.trim().split('\n').at(-1));
} finally {
  await vm.stop();
}

const mbps = (seconds) => (measured.mib * 1.048576) / seconds;
const { throughput, latency } = measured;
const rows = [
  ['throughput', `@vmlink/vsock ${measured.mib} MiB one way`, `${mbps(throughput.vsock).toFixed(1)} MB/s`, `${(mbps(throughput.vsock) / mbps(throughput.socat)).toFixed(2)}x socat (target >= 0.9x)`],
  ['throughput', `socat -> socat over vsock`, `${mbps(throughput.socat).toFixed(1)} MB/s`, 'reference'],
  ['throughput', `node:net over TCP loopback`, `${mbps(throughput.tcp).toFixed(1)} MB/s`, `${(mbps(throughput.tcp) / mbps(throughput.socat)).toFixed(2)}x socat`],
  ['latency', `@vmlink/vsock 1 B ping-pong`, `p50 ${latency.vsock.p50.toFixed(0)} us, p99 ${latency.vsock.p99.toFixed(0)} us`, `${(latency.vsock.p50 / latency.tcp.p50).toFixed(2)}x net p50 (target <= 1.2x)`],
  ['latency', `node:net TCP loopback 1 B ping-pong`, `p50 ${latency.tcp.p50.toFixed(0)} us, p99 ${latency.tcp.p99.toFixed(0)} us`, 'reference'],
  ['diagnostic', `native FdStream, AF_UNIX socketpair`, `p50 ${latency.unixFdStream.p50.toFixed(0)} us, p99 ${latency.unixFdStream.p99.toFixed(0)} us`, `${(latency.unixFdStream.p50 / latency.unixNet.p50).toFixed(2)}x net over Unix p50`],
  ['diagnostic', `node:net over a Unix socket`, `p50 ${latency.unixNet.p50.toFixed(0)} us, p99 ${latency.unixNet.p99.toFixed(0)} us`, 'reference'],
];
const header = ['kind', 'what', 'result', 'vs'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of rows) console.log(line(row));
console.log(`(${measured.roundTrips} round trips; QEMU TCG guest, ${args.cpus} vCPUs)`);

const jsonPath = join(repoRoot, args.json);
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify({ date: new Date().toISOString(), ...measured }, null, 2)}\n`);
console.log(`wrote ${jsonPath}`);
