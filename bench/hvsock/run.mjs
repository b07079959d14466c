#!/usr/bin/env node
// hvsock host<->guest through @vmlink/vhost-user-vsock, against QEMU's own virtio-serial
// (socat at both ends), in the same boot: bulk bytes each way and 1-byte ping-pong.
//
//   npm run build && node bench/hvsock/run.mjs [--mib=256] [--seconds=5] [--runs=3] [--json=bench/results/hvsock.json]
//
// Every measurement is taken --runs times, hvsock and virtio-serial side by side, the
// order swapped each run (so a load change on this shared machine hits both); the table
// shows each run, the medians and the ratio of the medians. The device's counters are
// diffed around each hvsock measurement (packets per kick, interrupts, credit updates).
// Measures; never asserts. Targets (issue 10): throughput >= 1.0x virtio-serial both
// ways, ping-pong p50 <= 1.0x.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createConnection, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { startVm } from '@vmlink/testvm';
import { createVsockDevice } from '@vmlink/vhost-user-vsock';
import { timeBytes } from '../lib/streams.mjs';
import { median, percentile, ratio } from '../lib/summary.mjs';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    json: { type: 'string' },
    // extra createVsockDevice options as JSON, e.g. --device='{"txNotifyBatch":1}' (tuning)
    device: { type: 'string', default: '{}' },
    // a subset of guestToHost,hostToGuest,ping (tuning one path; the tables show only those)
    only: { type: 'string', default: 'guestToHost,hostToGuest,ping' },
    // guest -> host source, both paths alike: 'file' = socat reads /dev/zero itself in
    // 64 KiB reads (its -b); 'pipe' = `head -c N /dev/zero | socat` (the sections before
    // 2026-12-06 06:00), where socat gets whatever one pipe read holds (often 4 KiB)
    source: { type: 'string', default: 'file' },
  },
});
const size = Number(args.mib) * 1024 * 1024;
const seconds = Number(args.seconds);
const runs = Math.max(1, Number(args.runs));
const kinds = args.only.split(',').filter((k) => ['guestToHost', 'hostToGuest', 'ping'].includes(k));
if (!['file', 'pipe'].includes(args.source)) throw new Error(`--source must be file or pipe, got ${JSON.stringify(args.source)}`);
/** The guest's sending socat up to (not including) its destination address. */
const guestSender = args.source === 'pipe'
  ? `head -c ${size} /dev/zero | socat -u -b 65536 STDIN`
  : `socat -u -b 65536 OPEN:/dev/zero,readbytes=${size}`;
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

function connectSerial(path) {
  const socket = createConnection(path);
  return new Promise((resolve, reject) => socket.once('connect', () => resolve(socket)).once('error', reject));
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

/** Flattens the device's stats into `name -> number` (nested objects as `a.b`). */
function flatStats(stats, prefix = '', out = {}) {
  for (const [key, value] of Object.entries(stats)) {
    if (typeof value === 'number') out[prefix + key] = value;
    else if (value !== null && typeof value === 'object') flatStats(value, `${prefix}${key}.`, out);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'vmlink-bench-hvsock-'));
const share = join(dir, 'share');
mkdirSync(share);
const deviceOptions = JSON.parse(args.device);
const dev = await createVsockDevice({ ...deviceOptions, socket: join(dir, 'vhost.sock'), udsPath: join(dir, 'v.sock'), guestCid: 3 });

/** CPU seconds QEMU (all its threads: vCPU, main loop) has used so far. */
function qemuCpuSeconds(pid) {
  // /proc/PID/stat: utime and stime are fields 14 and 15, in clock ticks (100 per second here).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Runs `fn` and returns its result with the CPU it cost: QEMU's seconds and this process's
 * (the host end of both paths, plus the device for hvsock). CPU per byte moves much less
 * with this machine's load than wall-clock rates do.
 */
async function withCpu(fn) {
  const q0 = qemuCpuSeconds(vm.pid);
  const p0 = process.cpuUsage();
  const value = await fn();
  const p = process.cpuUsage(p0);
  return { value, cpu: { qemu: qemuCpuSeconds(vm.pid) - q0, host: (p.user + p.system) / 1e6 } };
}

/** Runs `fn` and returns its result with the device's counter changes during it. */
async function withCounters(fn) {
  const before = flatStats(dev.stats());
  const value = await fn();
  const after = flatStats(dev.stats());
  const delta = {};
  for (const [key, v] of Object.entries(after)) if (v !== before[key]) delta[key] = v - (before[key] ?? 0);
  return { value, delta };
}

if (process.env.BENCH_TRACE) {
  // Tuning aid: the device's log lines, and its counters every 30 s (a stall shows there).
  dev.on('log', (line) => console.log(`device: ${line}`));
  setInterval(() => console.log(`device stats: ${JSON.stringify(flatStats(dev.stats()))}`), 30_000).unref();
}

const results = { guestToHost: { hvsock: [], serial: [] }, hostToGuest: { hvsock: [], serial: [] }, ping: { hvsock: [], serial: [] } };
const counters = { guestToHost: [], hostToGuest: [], ping: [] };
const cpu = { guestToHost: { hvsock: [], serial: [] }, hostToGuest: { hvsock: [], serial: [] }, ping: { hvsock: [], serial: [] } };
const load = [];
let vm;
try {
  // testvm adds the device's QEMU arguments, loads the guest module and waits for the driver.
  vm = await startVm({ share, ports: [PORT], withPrograms: ['socat'], vsock: { device: dev }, memoryMiB: MEMORY_MIB, timeoutMs: 180_000 });
  const serialPath = vm.portPath(PORT);
  console.log(`guest ready; ${args.mib} MiB per bulk run, ${seconds} s per ping-pong, ${runs} runs (order swapped each run); device options ${JSON.stringify(deviceOptions)}; guest -> host source: ${args.source}`);
  await vm.run('sh', ['-c', 'socat VSOCK-LISTEN:5002,fork EXEC:cat >/dev/null 2>&1 </dev/null &']);

  const measure = {
    guestToHost: {
      async hvsock() {
        const server = createServer();
        const conn = new Promise((resolve) => server.once('connection', resolve));
        await new Promise((resolve) => server.listen(`${dev.udsPath}_6000`, resolve));
        const run = vm.run('sh', ['-c', `${guestSender} VSOCK-CONNECT:2:6000`], { timeoutMs: 900_000 });
        const secs = await timeBytes(await conn, size);
        await run;
        await new Promise((resolve) => server.close(resolve));
        return size / secs / 1e6;
      },
      async serial() {
        const socket = await connectSerial(serialPath);
        const timing = timeBytes(socket, size);
        const run = vm.run('sh', ['-c', `${guestSender} OPEN:/dev/virtio-ports/${PORT},wronly`], { timeoutMs: 900_000 });
        const secs = await timing;
        await run;
        socket.destroy();
        return size / secs / 1e6;
      },
    },
    // from the first byte written to the guest command's end (same overhead both ways)
    hostToGuest: {
      async hvsock() {
        const run = vm.run('sh', ['-c', 'socat -u -b 65536 VSOCK-LISTEN:5001 OPEN:/dev/null'], { timeoutMs: 900_000 });
        const socket = await hvsockConnect(dev.udsPath, 5001);
        const t0 = performance.now();
        await writeZeros(socket, size);
        socket.end();
        await run;
        const rate = size / ((performance.now() - t0) / 1000) / 1e6;
        socket.destroy();
        return rate;
      },
      async serial() {
        const socket = await connectSerial(serialPath);
        const run = vm.run('sh', ['-c', `head -c ${size} /dev/virtio-ports/${PORT} > /dev/null`], { timeoutMs: 900_000 });
        const t0 = performance.now();
        await writeZeros(socket, size);
        await run;
        const rate = size / ((performance.now() - t0) / 1000) / 1e6;
        socket.destroy();
        return rate;
      },
    },
    ping: {
      async hvsock() {
        const socket = await hvsockConnect(dev.udsPath, 5002);
        const result = await pingPong(socket);
        socket.destroy();
        return result;
      },
      async serial() {
        // The port has one guest holder at a time: this echo lives for this run only. The
        // host connects first: a guest reading the port while the host is away reads EOF
        // and socat would quit (kernel-facts.md, virtio-serial).
        const socket = await connectSerial(serialPath);
        const started = await vm.run('sh', ['-c', `sleep 0.1; socat OPEN:/dev/virtio-ports/${PORT} EXEC:cat >/dev/null 2>&1 </dev/null & echo $!`]);
        const pid = started.stdout.trim();
        const result = await pingPong(socket);
        socket.destroy();
        await vm.run('sh', ['-c', `kill ${pid}; while kill -0 ${pid} 2>/dev/null; do sleep 0.05; done`]);
        return result;
      },
    },
  };

  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? ['hvsock', 'serial'] : ['serial', 'hvsock'];
    load.push(loadavg()[0]);
    for (const kind of kinds) {
      for (const path of order) {
        if (process.env.BENCH_TRACE) console.log(`${new Date().toISOString()} run ${r + 1} ${kind} ${path}`);
        const { value: { value, delta }, cpu: used } = await withCpu(() =>
          path === 'hvsock' ? withCounters(() => measure[kind].hvsock()) : measure[kind].serial().then((v) => ({ value: v })),
        );
        results[kind][path].push(value);
        // per MiB for bulk, per round trip (µs) for ping-pong
        const per = kind === 'ping' ? 1e6 / value.count : 1 / (size / 1048576);
        cpu[kind][path].push({ qemu: used.qemu * per * (kind === 'ping' ? 1 : 1000), host: used.host * per * (kind === 'ping' ? 1 : 1000) });
        if (delta !== undefined) counters[kind].push(delta);
      }
    }
    console.log(`run ${r + 1}/${runs} done (load average ${load.at(-1).toFixed(2)})`);
  }

  const row = (label, hv, se, digits, lowerIsBetter) => {
    if (hv.length === 0) return;
    const hm = median(hv);
    const sm = median(se);
    const perRun = hv.map((h, i) => (h / se[i]).toFixed(2)).join(' ');
    const target = lowerIsBetter ? hm / sm <= 1 : hm / sm >= 1;
    console.log(
      `| ${label} | ${hv.map((v) => v.toFixed(digits)).join(' / ')} | ${se.map((v) => v.toFixed(digits)).join(' / ')} | ` +
        `${hm.toFixed(digits)} | ${sm.toFixed(digits)} | ${ratio(hm, sm)} ${target ? '(met)' : '(missed)'} | ${perRun} |`,
    );
  };
  console.log(`\nload average (1 min) at each run start: ${load.map((l) => l.toFixed(2)).join(', ')}`);
  console.log('\n| | hvsock runs | virtio-serial runs | hvsock median | virtio-serial median | ratio of medians | per-run ratios |');
  console.log('|---|---|---|---|---|---|---|');
  row('guest -> host MB/s', results.guestToHost.hvsock, results.guestToHost.serial, 1, false);
  row('host -> guest MB/s', results.hostToGuest.hvsock, results.hostToGuest.serial, 1, false);
  row('ping-pong p50 µs', results.ping.hvsock.map((p) => p.p50), results.ping.serial.map((p) => p.p50), 0, true);
  row('ping-pong p99 µs', results.ping.hvsock.map((p) => p.p99), results.ping.serial.map((p) => p.p99), 0, true);

  console.log('\n| CPU cost (median) | hvsock: QEMU | hvsock: this process (device + reader) | virtio-serial: QEMU | virtio-serial: this process |');
  console.log('|---|---|---|---|---|');
  for (const [kind, unit] of [['guestToHost', 'ms/MiB'], ['hostToGuest', 'ms/MiB'], ['ping', 'µs/round trip']].filter(([k]) => kinds.includes(k))) {
    const m = (path, who) => median(cpu[kind][path].map((c) => c[who])).toFixed(1);
    console.log(`| ${kind} (${unit}) | ${m('hvsock', 'qemu')} | ${m('hvsock', 'host')} | ${m('serial', 'qemu')} | ${m('serial', 'host')} |`);
  }

  // What the device did per hvsock measurement (medians over the runs).
  const profileKeys = [
    'packetsFromGuest', 'packetsToGuest', 'bytesFromGuest', 'bytesToGuest', 'kicksByQueue.rx', 'kicksByQueue.tx',
    'interruptsByQueue.rx', 'interruptsByQueue.tx', 'creditUpdatesSent', 'creditUpdatesReceived', 'hostReads', 'hostWrites',
    'packetsFromGuestByOp.rw', 'packetsFromGuestByOp.rwEmpty', 'packetsFromGuestByOp.creditUpdate',
    'packetsFromGuestByOp.creditRequest', 'packetsFromGuestByOp.shutdown', 'packetsFromGuestByOp.other',
    'txPasses', 'txTimerPasses', 'txStreamDeferrals', 'hostWritesBlocked',
  ];
  console.log(`\n| device counters (median per run) | ${profileKeys.join(' | ')} |`);
  console.log(`|---|${profileKeys.map(() => '---').join('|')}|`);
  for (const kind of kinds) {
    console.log(`| ${kind} | ${profileKeys.map((k) => median(counters[kind].map((d) => d[k] ?? 0))).join(' | ')} |`);
  }
  // The guest -> host path's per-packet costs, per MiB (deterministic where MB/s is not).
  if (kinds.includes('guestToHost')) {
    const mib = size / 1048576;
    const perMiB = (key) => (median(counters.guestToHost.map((d) => d[key] ?? 0)) / mib).toFixed(1);
    const keys = ['packetsFromGuest', 'kicksByQueue.tx', 'txPasses', 'txTimerPasses', 'hostWrites', 'hostWritesBlocked', 'interruptsByQueue.tx', 'interruptsByQueue.rx', 'creditUpdatesSent'];
    console.log(`\n| guest -> host per MiB (median) | ${keys.join(' | ')} |`);
    console.log(`|---|${keys.map(() => '---').join('|')}|`);
    console.log(`| hvsock | ${keys.map(perMiB).join(' | ')} |`);
  }
  if (args.json) {
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), mib: Number(args.mib), seconds, runs, source: args.source, deviceOptions, load, results, cpu, counters }, null, 2));
  }
} finally {
  await vm?.stop();
  await dev.close();
  rmSync(dir, { recursive: true, force: true });
}
