#!/usr/bin/env node
// hvsock host<->guest through @vmlink/vhost-user-vsock, against QEMU's own virtio-serial
// (socat at both ends), in the same boot: bulk bytes each way and 1-byte ping-pong.
//
//   npm run build && node bench/hvsock/run.mjs [--mib 256] [--seconds 5] [--json bench/results/hvsock.json]
//
// Boots a throwaway QEMU guest (TCG) with @vmlink/testvm plus the device (a QEMU wrapper
// appends qemuVsockArgs until testvm has `vsock: true`). Measures; never asserts.
// Targets (issue 10): throughput >= 1.0x virtio-serial both ways, ping-pong p50 <= 1.0x.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { startVm } from '@vmlink/testvm';
import { createVsockDevice } from '@vmlink/vhost-user-vsock';
import { timeBytes } from '../lib/streams.mjs';

const { values: args } = parseArgs({
  options: { mib: { type: 'string', default: '256' }, seconds: { type: 'string', default: '5' }, json: { type: 'string' } },
});
const size = Number(args.mib) * 1024 * 1024;
const seconds = Number(args.seconds);
const PORT = 'org.vmlink.bench.hvsock';
const MEMORY_MIB = 1024;

/** Writes `total` zero bytes with backpressure. */
async function writeZeros(socket, total) {
  const chunk = Buffer.alloc(256 * 1024);
  let left = total;
  while (left > 0) {
    const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
    left -= piece.length;
    if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
  }
}

/** Host -> guest CONNECT, retried until the guest listener is up; resolves the socket after OK. */
async function hvsockConnect(udsPath, port) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const socket = connect(udsPath);
    const ok = await new Promise((resolve) => {
      let line = '';
      const onData = (d) => {
        line += d.toString('latin1');
        if (line.includes('\n')) {
          socket.off('data', onData);
          socket.pause();
          resolve(line.startsWith('OK '));
        }
      };
      socket.on('data', onData);
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
      socket.write(`CONNECT ${port}\n`);
    });
    if (ok) return socket;
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`guest never listened on vsock port ${port}`);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** 1-byte ping-pong on a connected echo socket for `seconds`; latencies in µs. */
async function pingPong(socket) {
  const latencies = [];
  const one = Buffer.from([0x2a]);
  const deadline = performance.now() + seconds * 1000;
  let answered = () => {};
  let failed = () => {};
  socket.on('data', () => answered());
  socket.on('error', (err) => failed(err));
  socket.resume();
  while (performance.now() < deadline) {
    const t0 = performance.now();
    await new Promise((resolve, reject) => {
      answered = resolve;
      failed = reject;
      socket.write(one);
    });
    latencies.push((performance.now() - t0) * 1000);
  }
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const dir = mkdtempSync(join(tmpdir(), 'vmlink-bench-hvsock-'));
const share = join(dir, 'share');
mkdirSync(share);
const dev = await createVsockDevice({ socket: join(dir, 'vhost.sock'), udsPath: join(dir, 'v.sock'), guestCid: 3 });
const results = {};
let vm;
try {
  // testvm adds the device's QEMU arguments, loads the guest module and waits for the driver.
  vm = await startVm({ share, ports: [PORT], withPrograms: ['socat'], vsock: { device: dev }, memoryMiB: MEMORY_MIB, timeoutMs: 180_000 });
  const serialPath = vm.portPath(PORT);
  console.log(`guest ready; ${args.mib} MiB per bulk run, ${seconds} s per ping-pong`);

  // guest -> host
  {
    const server = createServer();
    const conn = new Promise((resolve) => server.once('connection', resolve));
    await new Promise((resolve) => server.listen(`${dev.udsPath}_6000`, resolve));
    const run = vm.run('sh', ['-c', `head -c ${size} /dev/zero | socat -u -b 65536 STDIN VSOCK-CONNECT:2:6000`], { timeoutMs: 900_000 });
    const secs = await timeBytes(await conn, size);
    await run;
    server.close();
    results.guestToHostHvsock = size / secs / 1e6;
  }
  {
    const socket = createConnection(serialPath);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const timing = timeBytes(socket, size);
    const run = vm.run('sh', ['-c', `head -c ${size} /dev/zero | socat -u -b 65536 STDIN OPEN:/dev/virtio-ports/${PORT},wronly`], { timeoutMs: 900_000 });
    const secs = await timing;
    await run;
    socket.destroy();
    results.guestToHostSerial = size / secs / 1e6;
  }
  // host -> guest: from the first byte written to the guest command's end (same overhead both ways)
  {
    const run = vm.run('sh', ['-c', 'socat -u -b 65536 VSOCK-LISTEN:5001 OPEN:/dev/null'], { timeoutMs: 900_000 });
    const socket = await hvsockConnect(dev.udsPath, 5001);
    const t0 = performance.now();
    await writeZeros(socket, size);
    socket.end();
    await run;
    results.hostToGuestHvsock = size / ((performance.now() - t0) / 1000) / 1e6;
    socket.destroy();
  }
  {
    const socket = createConnection(serialPath);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const run = vm.run('sh', ['-c', `head -c ${size} /dev/virtio-ports/${PORT} > /dev/null`], { timeoutMs: 900_000 });
    const t0 = performance.now();
    await writeZeros(socket, size);
    await run;
    results.hostToGuestSerial = size / ((performance.now() - t0) / 1000) / 1e6;
    socket.destroy();
  }
  // 1-byte ping-pong
  {
    await vm.run('sh', ['-c', 'socat VSOCK-LISTEN:5002,fork EXEC:cat >/dev/null 2>&1 </dev/null &']);
    const socket = await hvsockConnect(dev.udsPath, 5002);
    results.pingHvsock = await pingPong(socket);
    socket.destroy();
  }
  {
    await vm.run('sh', ['-c', `socat OPEN:/dev/virtio-ports/${PORT} EXEC:cat >/dev/null 2>&1 </dev/null &`]);
    const socket = createConnection(serialPath);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    results.pingSerial = await pingPong(socket);
    socket.destroy();
  }
  const ratio = (a, b) => (a / b).toFixed(2);
  console.log('\n| | hvsock (device) | virtio-serial | ratio |\n|---|---|---|---|');
  console.log(`| guest -> host MB/s | ${results.guestToHostHvsock.toFixed(1)} | ${results.guestToHostSerial.toFixed(1)} | ${ratio(results.guestToHostHvsock, results.guestToHostSerial)}x |`);
  console.log(`| host -> guest MB/s | ${results.hostToGuestHvsock.toFixed(1)} | ${results.hostToGuestSerial.toFixed(1)} | ${ratio(results.hostToGuestHvsock, results.hostToGuestSerial)}x |`);
  console.log(`| ping-pong p50 µs | ${results.pingHvsock.p50.toFixed(0)} | ${results.pingSerial.p50.toFixed(0)} | ${ratio(results.pingHvsock.p50, results.pingSerial.p50)}x |`);
  console.log(`| ping-pong p99 µs | ${results.pingHvsock.p99.toFixed(0)} | ${results.pingSerial.p99.toFixed(0)} | ${ratio(results.pingHvsock.p99, results.pingSerial.p99)}x |`);
  console.log(`\ndevice: ${JSON.stringify({ ...dev.stats(), dropped: undefined })}`);
  if (args.json) {
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), mib: Number(args.mib), seconds, results }, null, 2));
  }
} finally {
  await vm?.stop();
  await dev.close();
  rmSync(dir, { recursive: true, force: true });
}
