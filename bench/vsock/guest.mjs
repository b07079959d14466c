// Guest half of bench/vsock/run.mjs (runs inside the QEMU guest, CID 1 loopback).
// Prints one JSON line with every measurement.
//   node guest.mjs [--mib 256] [--round-trips 10000] [--c-bin /path/to/pingpong]
//                  [--repeat N] [--throughput-only]
// --repeat N runs every throughput row N times, interleaved (C, socat, Node ... then again),
// so a burst of load on the shared host hits all rows alike; the JSON has every run.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import { loadBinding } from '@vmlink/native';
import { connect, createServer } from '@vmlink/vsock';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    'round-trips': { type: 'string', default: '10000' },
    'c-bin': { type: 'string' },
    repeat: { type: 'string', default: '1' },
    'throughput-only': { type: 'boolean', default: false },
  },
});
const TOTAL = Number(args.mib) * 1024 * 1024;
const ROUND_TRIPS = Number(args['round-trips']);
const CHUNK = Buffer.alloc(1024 * 1024, 0x5a);

/** One-way transfer of TOTAL bytes: seconds from connect to the last byte received. */
async function oneWay(listen, dial) {
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const address = await listen((socket) => {
    let received = 0;
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received >= TOTAL) done(performance.now());
    });
  });
  const started = performance.now();
  const client = await dial(address);
  for (let sent = 0; sent < TOTAL; sent += CHUNK.length) {
    if (!client.write(sent + CHUNK.length <= TOTAL ? CHUNK : CHUNK.subarray(0, TOTAL - sent))) await once(client, 'drain');
  }
  const ended = await finished;
  client.destroy();
  return (ended - started) / 1000;
}

/** The largest RSS seen (sampled every 50 ms) while `run` runs, in bytes; `run`'s result rides along. */
async function withPeakRss(run) {
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
  try {
    const result = await run();
    return { result, peakRss: Math.max(peak, process.memoryUsage.rss()) };
  } finally {
    clearInterval(sampler);
  }
}

/** Spawns bench/vsock/pingpong.c in sink or source mode; resolves its JSON lines one by one. */
function cPeer(cArgs) {
  const child = spawn(args['c-bin'], cArgs.map(String), { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  let partial = '';
  child.stdout.on('data', (chunk) => {
    partial += chunk;
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = JSON.parse(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const exited = once(child, 'exit');
  return {
    next: () => (lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiters.push(resolve))),
    exited: exited.then(([code]) => {
      if (code !== 0) throw new Error(`pingpong ${cArgs.join(' ')} exited ${code}`);
    }),
  };
}

/** @vmlink/vsock sends TOTAL bytes to a C reader: seconds from connect to the reader's EOF. */
async function vsockSendsToC() {
  const peer = cPeer(['sink', 'vsock']);
  const { port } = await peer.next();
  const started = performance.now();
  const client = await vsock.dial(port);
  for (let sent = 0; sent < TOTAL; sent += CHUNK.length) {
    if (!client.write(sent + CHUNK.length <= TOTAL ? CHUNK : CHUNK.subarray(0, TOTAL - sent))) await once(client, 'drain');
  }
  client.end();
  const { bytes } = await peer.next();
  const seconds = (performance.now() - started) / 1000;
  await peer.exited;
  client.destroy();
  if (bytes !== TOTAL) throw new Error(`the C reader got ${bytes} bytes, not ${TOTAL}`);
  return seconds;
}

/** A C writer sends TOTAL bytes to @vmlink/vsock: seconds from 'connection' to 'end'. */
async function vsockReceivesFromC() {
  let done;
  const finished = new Promise((resolve, reject) => (done = { resolve, reject }));
  let started;
  const port = await vsock.listen((socket) => {
    started = performance.now();
    let received = 0;
    socket.on('data', (chunk) => (received += chunk.length));
    socket.on('end', () => {
      const ended = performance.now();
      socket.destroy();
      if (received === TOTAL) done.resolve((ended - started) / 1000);
      else done.reject(new Error(`received ${received} bytes, not ${TOTAL}`));
    });
    socket.on('error', done.reject);
  });
  const peer = cPeer(['source', 'vsock', port, TOTAL]);
  const seconds = await finished;
  await peer.exited;
  return seconds;
}

/** ROUND_TRIPS 1-byte ping-pongs; returns sorted latencies in microseconds. */
async function pingPong(listen, dial) {
  const address = await listen((socket) => socket.on('data', (chunk) => socket.write(chunk)));
  return timePingPongs(await dial(address));
}

/** The same, against bench/vsock/echo-peer.mjs in a child process (its own event loop). */
async function pingPongCrossProcess(name, dial) {
  const peer = spawn(process.execPath, [join(fileURLToPath(new URL('.', import.meta.url)), 'echo-peer.mjs'), name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [line] = await once(peer.stdout, 'data');
    return await timePingPongs(await dial(Number(String(line).trim())));
  } finally {
    peer.kill();
  }
}

async function timePingPongs(client) {
  const latencies = new Float64Array(ROUND_TRIPS);
  const byte = Buffer.from([1]);
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const started = performance.now();
    client.write(byte);
    await once(client, 'data');
    latencies[i] = (performance.now() - started) * 1000;
  }
  client.destroy();
  return latencies.sort();
}

const servers = [];
const vsock = {
  listen: async (onConnection) => {
    const server = createServer(onConnection);
    servers.push(server);
    server.listen({});
    await once(server, 'listening');
    return server.address().port;
  },
  dial: async (port) => {
    const socket = connect({ cid: 1, port });
    await once(socket, 'connect');
    return socket;
  },
};
const tcp = {
  listen: async (onConnection) => {
    const server = net.createServer(onConnection);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return server.address().port;
  },
  dial: async (port) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await once(socket, 'connect');
    return socket;
  },
};

/** socat to socat, the same transfer: `socat -u VSOCK-LISTEN:P /dev/null` fed by a limited /dev/zero. */
async function socatOneWay() {
  const port = 40_000 + Math.floor(Math.random() * 10_000);
  const listener = spawn('socat', ['-u', `VSOCK-LISTEN:${port}`, 'OPEN:/dev/null'], { stdio: 'inherit' });
  const exited = once(listener, 'exit');
  // The sender fails (connection reset) until the listener is up: retry, time the attempt that worked.
  for (let attempt = 0; attempt < 200; attempt++) {
    const started = performance.now();
    const sender = spawn('socat', ['-u', `OPEN:/dev/zero,readbytes=${TOTAL}`, `VSOCK-CONNECT:1:${port}`], { stdio: 'ignore' });
    const [code] = await once(sender, 'exit');
    if (code === 0) {
      const [listenerCode] = await exited;
      if (listenerCode !== 0) throw new Error(`socat listener exited ${listenerCode}`);
      return (performance.now() - started) / 1000;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  listener.kill();
  throw new Error('socat sender never connected');
}

/**
 * Diagnostic: the same ping-pong over an AF_UNIX socketpair with the native FdStream that
 * @vmlink/vsock sockets use, vs node:net over a Unix socket. Equal numbers mean any
 * vsock/TCP gap comes from the kernel transport, not from our user-space path.
 */
async function fdStreamUnixPingPong() {
  const [a, b] = loadBinding().socketpair('stream');
  return fdStreamPingPong(a, b);
}

/** Diagnostic: a connected AF_VSOCK pair (CID 1) straight from the addon, no Duplex. */
async function fdStreamVsockPingPong() {
  const binding = loadBinding();
  const { VMADDR_CID_ANY, VMADDR_PORT_ANY } = binding.vsockConstants;
  const listenFd = binding.vsockSocket('stream');
  binding.vsockBind(listenFd, VMADDR_CID_ANY, VMADDR_PORT_ANY);
  binding.vsockListen(listenFd, 1);
  const { port } = binding.vsockSockName(listenFd);
  let accepted;
  const acceptedFd = new Promise((resolve, reject) => (accepted = { resolve, reject }));
  const listener = new binding.VsockListener(listenFd, { onConnection: (fd) => accepted.resolve(fd), onError: (e) => accepted.reject(e) });
  listener.start();
  const clientFd = binding.vsockSocket('stream');
  if (!binding.vsockConnect(clientFd, 1, port, 0)) {
    // EINPROGRESS. Only one FdStream may own the fd, so wait by asking getpeername (ENOTCONN until done).
    for (;;) {
      const error = binding.vsockConnectResult(clientFd, 1, port);
      if (error !== null) throw error;
      try {
        binding.vsockPeerName(clientFd);
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  }
  const serverFd = await acceptedFd;
  listener.close();
  return fdStreamPingPong(serverFd, clientFd);
}

async function fdStreamPingPong(a, b) {
  const binding = loadBinding();
  let wake;
  const server = new binding.FdStream(a, {}, { onData: (chunk) => server.write(chunk, () => {}), onError: (e) => { throw e; } });
  const client = new binding.FdStream(b, {}, { onData: () => wake(), onError: (e) => { throw e; } });
  server.readStart();
  client.readStart();
  const latencies = new Float64Array(ROUND_TRIPS);
  const byte = Buffer.from([1]);
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const started = performance.now();
    await new Promise((resolve) => {
      wake = resolve;
      client.write(byte, () => {});
    });
    latencies[i] = (performance.now() - started) * 1000;
  }
  server.close();
  client.close();
  return latencies.sort();
}

const unixNet = {
  listen: async (onConnection) => {
    const path = `/tmp/vmlink-bench-${process.pid}.sock`;
    const server = net.createServer(onConnection);
    servers.push(server);
    server.listen(path);
    await once(server, 'listening');
    return path;
  },
  dial: async (path) => {
    const socket = net.connect(path);
    await once(socket, 'connect');
    return socket;
  },
};

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** The main thread's involuntary context switches (preempted while runnable). */
function involuntarySwitches() {
  const status = readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8');
  return Number(/nonvoluntary_ctxt_switches:\s*(\d+)/.exec(status)?.[1] ?? NaN);
}

/**
 * Runs one ping-pong series and summarises it, with two per-round-trip counters that
 * explain the vsock rows: how often the main thread was preempted (vsock_loopback wakes a
 * kernel worker on every send) and how much CPU this process burned (all its threads).
 */
async function measure(run) {
  const switches = involuntarySwitches();
  const cpu = process.cpuUsage();
  const sorted = await run();
  const used = process.cpuUsage(cpu);
  return {
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    preemptionsPerRoundTrip: (involuntarySwitches() - switches) / sorted.length,
    cpuUsPerRoundTrip: (used.user + used.system) / sorted.length,
  };
}

/** bench/vsock/pingpong.c, built on the host by run.mjs: the kernel floor in C. */
const runC = async (...cArgs) => JSON.parse((await promisify(execFile)(args['c-bin'], cArgs.map(String))).stdout);

const REPEAT = Number(args.repeat);
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};
const result = { mib: Number(args.mib), roundTrips: ROUND_TRIPS, repeat: REPEAT, throughput: {}, throughputRuns: {}, peakRss: {}, latency: {}, c: null };
// Interleaved: each round runs every row once, so load bursts on the shared host spread evenly.
const throughputRows = {
  ...(args['c-bin'] === undefined ? {} : { cVsock: async () => (await runC('throughput', 'vsock', TOTAL)).seconds }),
  socat: socatOneWay,
  vsock: () => oneWay(vsock.listen, vsock.dial),
  ...(args['c-bin'] === undefined ? {} : { vsockSend: vsockSendsToC, vsockReceive: vsockReceivesFromC }),
  tcp: () => oneWay(tcp.listen, tcp.dial),
};
for (let round = 0; round < REPEAT; round++) {
  for (const [name, run] of Object.entries(throughputRows)) {
    const { result: seconds, peakRss } = await withPeakRss(run);
    (result.throughputRuns[name] ??= []).push(seconds);
    result.peakRss[name] = Math.max(result.peakRss[name] ?? 0, peakRss);
  }
}
for (const [name, runs] of Object.entries(result.throughputRuns)) result.throughput[name] = median(runs);
if (!args['throughput-only']) {
  for (const [name, transport] of [['vsock', vsock], ['tcp', tcp], ['unixNet', unixNet]]) {
    result.latency[name] = await measure(() => pingPong(transport.listen, transport.dial));
  }
  for (const [name, run] of [
    ['unixFdStream', fdStreamUnixPingPong],
    ['vsockFdStream', fdStreamVsockPingPong],
    ['vsockCrossProcess', () => pingPongCrossProcess('vsock', vsock.dial)],
    ['tcpCrossProcess', () => pingPongCrossProcess('tcp', tcp.dial)],
  ]) {
    result.latency[name] = await measure(run);
  }
}
// The loop-pkey rows need PKU in the guest CPU; @vmlink/testvm turns it off (pku=off), in
// which case Node allocates no protection key either and those rows have nothing to show.
result.guestPku = /\bpku\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
if (args['c-bin'] !== undefined) {
  result.c = { latency: {}, throughput: {} };
  if (!args['throughput-only']) {
    for (const transport of ['vsock', 'tcp']) {
      for (const wait of ['block', 'epoll', 'loop', ...(result.guestPku ? ['loop-pkey'] : [])]) {
        const { p50, p99 } = await runC('latency', transport, ROUND_TRIPS, wait);
        result.c.latency[`${transport}-${wait}`] = { p50, p99 };
      }
    }
  }
  result.c.throughput.vsock = result.throughput.cVsock;
  result.c.throughput.tcp = (await runC('throughput', 'tcp', TOTAL)).seconds;
}
for (const server of servers) server.close();
console.log(JSON.stringify(result));
