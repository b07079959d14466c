#!/usr/bin/env node
// virtio-serial host<->guest: bulk bytes (guest -> host) through socat, through a raw
// @vmlink Connection, and through an @vmlink/rpc streamed body, all over the same port in
// the same boot; then small RPC round trips/s and raw echo round trips/s. Prints a table.
//
//   npm run build && node bench/virtio-serial/run.mjs [--mib 256] [--seconds 5] [--warm-up 5] [--json bench/results/virtio-serial.json]
//
// Boots a throwaway QEMU guest (TCG) with @vmlink/testvm. Target: RPC >= 0.8x socat.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RpcPeer } from '@vmlink/rpc';
import { startVm } from '@vmlink/testvm';
import { virtioSerial } from '@vmlink/transport-virtio-serial';
import { timeBytes } from '../lib/streams.mjs';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    seconds: { type: 'string', default: '5' },
    'warm-up': { type: 'string', default: '5' },
    json: { type: 'string' },
  },
});
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
const PORT = 'org.vmlink.bench.vs';
const size = Number(args.mib) * 1024 * 1024;
const seconds = Number(args.seconds);
const WARM_UP_SECONDS = Number(args['warm-up']);

async function socatBulk(vm) {
  const socket = createConnection(vm.portPath(PORT));
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const timing = timeBytes(socket, size);
  const run = vm.run('sh', ['-c', `head -c ${size} /dev/zero | socat -u -b 65536 STDIN OPEN:/dev/virtio-ports/${PORT},wronly`], {
    timeoutMs: 600_000,
  });
  const failed = run.then((result) => {
    if (result.exitCode !== 0) throw new Error(`socat failed (${result.exitCode}): ${result.stderr}`);
    return new Promise(() => {}); // finished: the timing decides
  });
  const secs = await Promise.race([timing, failed]);
  await run;
  socket.destroy();
  return secs;
}

async function dialCommand(transport, address, line) {
  const connection = await transport.dial(address, { timeout: 60_000 });
  connection.write(`${line}\n`);
  return connection;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function roundTrips(once, forSeconds = seconds) {
  const latencies = [];
  const deadline = performance.now() + forSeconds * 1000;
  const started = performance.now();
  while (performance.now() < deadline) {
    const t0 = performance.now();
    await once();
    latencies.push((performance.now() - t0) * 1000);
  }
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / ((performance.now() - started) / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const log = (what) => process.stderr.write(`[bench] ${what}\n`);
log('booting');
const vm = await startVm({ share: repoRoot, ports: [PORT], withPrograms: ['socat'] });
let server;
try {
  const rows = [];
  const mbps = (secs) => size / (1024 * 1024) / secs;
  log('socat');
  const socat = await socatBulk(vm);
  log(`socat ${socat.toFixed(2)} s`);
  rows.push({ what: `socat, ${args.mib} MiB guest -> host`, mibPerSecond: mbps(socat) });

  const controller = new AbortController();
  let out = '';
  server = vm.run('node', [join(here, 'guest-server.mjs'), PORT], { cwd: here, signal: controller.signal, onStdout: (d) => (out += d) }).catch(() => {});
  while (!out.includes('listening')) await new Promise((r) => setTimeout(r, 50));

  const transport = virtioSerial({ side: 'host' });
  const address = `virtio-serial+unix:${vm.portPath(PORT)}`;

  log('raw Connection');
  const raw = await dialCommand(transport, address, `send ${size}`);
  rows.push({ what: `Connection (raw), ${args.mib} MiB guest -> host`, mibPerSecond: mbps(await timeBytes(raw, size)) });
  raw.destroy();

  log('rpc');
  const rpc = new RpcPeer(await dialCommand(transport, address, 'rpc'));
  const t0 = performance.now();
  const response = await rpc.request('read', { size });
  let got = 0;
  for await (const chunk of response.body) got += chunk.length;
  if (got !== size) throw new Error(`rpc body: ${got} of ${size} bytes`);
  rows.push({ what: `RPC streamed body, ${args.mib} MiB guest -> host`, mibPerSecond: mbps((performance.now() - t0) / 1000) });

  // Both round-trip rows warm up the same way first (as bench/rpc/run.mjs does): under
  // TCG the guest's first thousand calls run cold code (JIT tiers, lazy compilation).
  const rpcOnce = () => rpc.call('echo', 'a'.repeat(32));
  await roundTrips(rpcOnce, WARM_UP_SECONDS);
  const rpcTrips = await roundTrips(rpcOnce);
  await rpc.close();
  const echo = await dialCommand(transport, address, 'echo');
  const payload = Buffer.alloc(32, 0x61);
  const echoOnce = () =>
    new Promise((resolve) => {
      let n = 0;
      const onData = (d) => {
        n += d.length;
        if (n >= payload.length) {
          echo.off('data', onData);
          resolve();
        }
      };
      echo.on('data', onData);
      echo.write(payload);
    });
  await roundTrips(echoOnce, WARM_UP_SECONDS);
  const echoTrips = await roundTrips(echoOnce);
  echo.destroy();
  controller.abort();

  const ratio = rows[2].mibPerSecond / rows[0].mibPerSecond;
  const tripRatio = rpcTrips.perSecond / echoTrips.perSecond;
  console.log(`\nvirtio-serial host<->guest (QEMU TCG, node ${process.version})\n`);
  console.log('bulk                                          MiB/s   vs socat');
  for (const r of rows) console.log(`${r.what.padEnd(44)} ${r.mibPerSecond.toFixed(1).padStart(7)}   ${(r.mibPerSecond / rows[0].mibPerSecond).toFixed(2)}x`);
  console.log('\nround trips (32-byte payload, 1 in flight)   per s    p50 µs    p99 µs');
  for (const [what, r] of [['RPC call', rpcTrips], ['raw Connection echo', echoTrips]]) {
    console.log(`${what.padEnd(44)} ${r.perSecond.toFixed(0).padStart(6)} ${r.p50.toFixed(0).padStart(9)} ${r.p99.toFixed(0).padStart(9)}`);
  }
  console.log(`(each round-trip row after ${WARM_UP_SECONDS} s of the same round trips, not counted; RPC target >= 0.5x raw echo)`);
  console.log(`\nRPC bulk vs socat: ${ratio.toFixed(2)}x (target >= 0.8x: ${ratio >= 0.8 ? 'met' : 'NOT met'}); RPC round trips vs raw echo: ${tripRatio.toFixed(2)}x (target >= 0.5x: ${tripRatio >= 0.5 ? 'met' : 'NOT met'})`);
  if (args.json) {
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, `${JSON.stringify({ mib: Number(args.mib), seconds, warmUpSeconds: WARM_UP_SECONDS, node: process.version, rows, rpcTrips, echoTrips, tripRatio }, null, 2)}\n`);
  }
} finally {
  await vm.stop();
  await server;
}
