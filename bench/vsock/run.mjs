#!/usr/bin/env node
// AF_VSOCK benchmark inside one throwaway QEMU guest (TCG), CID 1 loopback:
//   throughput  a one-way transfer (default 256 MiB) with @vmlink/vsock, socat -> socat
//               over vsock, and node:net over TCP loopback, all in the same boot
//   latency     1-byte ping-pongs (default 10,000): @vmlink/vsock vs node:net TCP loopback
// Prints a table and writes JSON (bench/results/ is git-ignored).
//
//   npm run build && node bench/vsock/run.mjs [--mib 256] [--round-trips 10000] [--json bench/results/vsock.json]
//                                             [--repeat 3] [--throughput-only] [--quick]
// --repeat N: every throughput row N times, interleaved in one boot; the table shows medians
// (the JSON keeps every run). --throughput-only skips the latency rows. --quick: 64 MiB,
// 2,000 round trips.
//
// Throughput rows "sends"/"receives" pair ONE @vmlink/vsock end with the C peer
// (pingpong.c sink/source), so each direction is compared with the C floor on its own;
// the "one way" row has both ends in one Node process (one thread does both halves).
//
// Targets: throughput >= 0.9x socat; p50 latency within 1.2x of net's. The diagnostic rows
// tell the user-space cost apart from the kernel transport's: the same ping-pong over
// AF_UNIX (our native FdStream vs node:net), over vsock with the bare FdStream (no Duplex),
// with the echo peer in another process, and bench/vsock/pingpong.c, a C peer compiled
// here with `cc -O2` into bench/results/ (rows skipped when there is no cc), giving the
// kernel floor for each transport and way of waiting.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
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
    repeat: { type: 'string', default: '1' },
    'throughput-only': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
  },
});
if (args.quick) {
  args.mib = '64';
  args['round-trips'] = '2000';
}
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');

/** Builds the C reference peer; undefined (rows skipped) when the host has no cc. */
function buildCPeer() {
  const output = join(repoRoot, 'bench', 'results', 'pingpong');
  mkdirSync(dirname(output), { recursive: true });
  try {
    execFileSync('cc', ['-O2', '-Wall', '-o', output, join(here, 'pingpong.c')], { stdio: 'inherit' });
    return output;
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    console.error('no cc on this host: skipping the C reference rows');
    return undefined;
  }
}
const cBin = buildCPeer();
const loadBefore = loadavg();

const vm = await startVm({ share: repoRoot, withPrograms: ['socat'], memoryMiB: 1024, cpus: Number(args.cpus) });
let measured;
try {
  const guestArgs = [join(here, 'guest.mjs'), '--mib', args.mib, '--round-trips', args['round-trips']];
  if (cBin !== undefined) guestArgs.push('--c-bin', cBin);
  guestArgs.push('--repeat', args.repeat);
  if (args['throughput-only']) guestArgs.push('--throughput-only');
  const run = await vm.run('node', guestArgs, {
    cwd: here,
    timeoutMs: 1_800_000,
  });
  if (run.exitCode !== 0) throw new Error(`guest bench failed (${run.exitCode}):\n${run.stdout}\n${run.stderr}`);
  measured = JSON.parse(run.stdout.trim().split('\n').at(-1));
} finally {
  await vm.stop();
}

const loadAfter = loadavg();
const mbps = (seconds) => (measured.mib * 1.048576) / seconds;
const { throughput, latency, c } = measured;
// Node rows also say how often the main thread was preempted and the process's CPU, per round trip.
const pp = ({ p50, p99, preemptionsPerRoundTrip, cpuUsPerRoundTrip }) =>
  `p50 ${p50.toFixed(0)} us, p99 ${p99.toFixed(0)} us` +
  (cpuUsPerRoundTrip === undefined ? '' : `; ${preemptionsPerRoundTrip.toFixed(1)} preempt, ${cpuUsPerRoundTrip.toFixed(0)} us CPU`);
const ratio = (a, b, what) => `${(a.p50 / b.p50).toFixed(2)}x ${what} p50`;
const mibOf = (bytes) => `${(bytes / 1048576).toFixed(0)} MiB`;
const vsC = (name) => (c === null ? 'no C peer' : `${(mbps(throughput[name]) / mbps(c.throughput.vsock)).toFixed(2)}x C floor (target >= 0.8x)`);
const rows = [
  ['throughput', `@vmlink/vsock ${measured.mib} MiB one way`, `${mbps(throughput.vsock).toFixed(1)} MB/s`, `${(mbps(throughput.vsock) / mbps(throughput.socat)).toFixed(2)}x socat (target >= 0.9x); ${c === null ? '' : `${(mbps(throughput.vsock) / mbps(c.throughput.vsock)).toFixed(2)}x C`}; peak RSS ${mibOf(measured.peakRss.vsock)}`],
  ...(throughput.vsockSend === undefined
    ? []
    : [
        ['throughput', `@vmlink/vsock sends to a C reader`, `${mbps(throughput.vsockSend).toFixed(1)} MB/s`, `${vsC('vsockSend')}; peak RSS ${mibOf(measured.peakRss.vsockSend)}`],
        ['throughput', `@vmlink/vsock receives from a C writer`, `${mbps(throughput.vsockReceive).toFixed(1)} MB/s`, `${vsC('vsockReceive')}; peak RSS ${mibOf(measured.peakRss.vsockReceive)}`],
      ]),
  ['throughput', `socat -> socat over vsock`, `${mbps(throughput.socat).toFixed(1)} MB/s`, c === null ? 'reference' : `${(mbps(throughput.socat) / mbps(c.throughput.vsock)).toFixed(2)}x C`],
  ['throughput', `node:net over TCP loopback`, `${mbps(throughput.tcp).toFixed(1)} MB/s`, `${(mbps(throughput.tcp) / mbps(throughput.socat)).toFixed(2)}x socat`],
];
if (latency.vsock !== undefined) {
  rows.push(
  ['latency', `@vmlink/vsock 1 B ping-pong`, pp(latency.vsock), `${(latency.vsock.p50 / latency.tcp.p50).toFixed(2)}x net p50 (target <= 1.2x)`],
  ['latency', `node:net TCP loopback 1 B ping-pong`, pp(latency.tcp), 'reference'],
  ['diagnostic', `native FdStream, AF_UNIX socketpair`, pp(latency.unixFdStream), ratio(latency.unixFdStream, latency.unixNet, 'net over Unix')],
  ['diagnostic', `node:net over a Unix socket`, pp(latency.unixNet), 'reference'],
  ['diagnostic', `native FdStream over vsock (no Duplex)`, pp(latency.vsockFdStream), ratio(latency.vsockFdStream, latency.vsock, '@vmlink/vsock')],
  ['diagnostic', `@vmlink/vsock, echo peer in another process`, pp(latency.vsockCrossProcess), ratio(latency.vsockCrossProcess, latency.tcpCrossProcess, 'net cross-process')],
  ['diagnostic', `node:net TCP, echo peer in another process`, pp(latency.tcpCrossProcess), 'reference'],
  );
}
if (c !== null && c.latency['vsock-loop'] !== undefined) {
  const cLatency = c.latency;
  rows.push(
    ['kernel floor', `C, vsock, one thread/one epoll (as above)`, pp(cLatency['vsock-loop']), `@vmlink/vsock is ${(latency.vsock.p50 / cLatency['vsock-loop'].p50).toFixed(2)}x this`],
    ['kernel floor', `C, TCP, one thread/one epoll (as above)`, pp(cLatency['tcp-loop']), `net is ${(latency.tcp.p50 / cLatency['tcp-loop'].p50).toFixed(2)}x this; vsock/TCP ${(cLatency['vsock-loop'].p50 / cLatency['tcp-loop'].p50).toFixed(2)}x`],
    ...(cLatency['vsock-loop-pkey'] === undefined
      ? [['kernel floor', `C, one loop, PKRU like Node's (pkey)`, 'not run', 'the guest CPU has no PKU (testvm: -cpu max,pku=off), so Node holds no protection key either']]
      : [
          ['kernel floor', `C, vsock, one loop, PKRU like Node's (pkey)`, pp(cLatency['vsock-loop-pkey']), `${(cLatency['vsock-loop-pkey'].p50 / cLatency['vsock-loop'].p50).toFixed(2)}x C vsock one loop; net is ${(latency.tcp.p50 / cLatency['vsock-loop-pkey'].p50).toFixed(2)}x this`],
          ['kernel floor', `C, TCP, one loop, PKRU like Node's (pkey)`, pp(cLatency['tcp-loop-pkey']), `${(cLatency['tcp-loop-pkey'].p50 / cLatency['tcp-loop'].p50).toFixed(2)}x C TCP one loop`],
        ]),
    ['kernel floor', `C, vsock, 2 processes, blocking read`, pp(cLatency['vsock-block']), `vsock/TCP ${(cLatency['vsock-block'].p50 / cLatency['tcp-block'].p50).toFixed(2)}x`],
    ['kernel floor', `C, TCP, 2 processes, blocking read`, pp(cLatency['tcp-block']), 'reference'],
    ['kernel floor', `C, vsock, 2 processes, epoll`, pp(cLatency['vsock-epoll']), `@vmlink/vsock cross-process is ${(latency.vsockCrossProcess.p50 / cLatency['vsock-epoll'].p50).toFixed(2)}x this`],
    ['kernel floor', `C, TCP, 2 processes, epoll`, pp(cLatency['tcp-epoll']), `net cross-process is ${(latency.tcpCrossProcess.p50 / cLatency['tcp-epoll'].p50).toFixed(2)}x this`],
  );
}
if (c !== null) {
  rows.push(
    ['kernel floor', `C ${measured.mib} MiB one way over vsock (2 processes)`, `${mbps(c.throughput.vsock).toFixed(1)} MB/s`, `@vmlink/vsock one way (one process) is ${(mbps(throughput.vsock) / mbps(c.throughput.vsock)).toFixed(2)}x this`],
    ['kernel floor', `C ${measured.mib} MiB one way over TCP`, `${mbps(c.throughput.tcp).toFixed(1)} MB/s`, `net is ${(mbps(throughput.tcp) / mbps(c.throughput.tcp)).toFixed(2)}x this`],
  );
}

const header = ['kind', 'what', 'result', 'vs'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of rows) console.log(line(row));
const load = (l) => l.map((x) => x.toFixed(2)).join(' ');
console.log(`(${measured.repeat ?? 1} interleaved run(s), medians; ${measured.roundTrips} round trips; QEMU TCG guest, ${args.cpus} vCPUs; host load average ${load(loadBefore)} before, ${load(loadAfter)} after)`);

const jsonPath = join(repoRoot, args.json);
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify({ date: new Date().toISOString(), loadAverage: { before: loadBefore, after: loadAfter }, ...measured }, null, 2)}\n`);
console.log(`wrote ${jsonPath}`);
