#!/usr/bin/env node
// RPC round trips vs raw Connection echo, over one transport. Prints a table, writes JSON.
//
//   node bench/rpc/run.mjs                       # unix, on the host
//   node bench/rpc/run.mjs --transport vsock     # vsock loopback: run it INSIDE a guest
//   node bench/rpc/run.mjs --seconds 5 --size 64 --warm-up 1 --json bench/results/rpc-unix.json
//
// The server runs in a child process (this file with --serve), so client and server do
// not share an event loop. Each mode measures one request in flight (latency: p50/p99)
// and 16 in flight (throughput). Target: RPC >= 0.5x the raw echo rate.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { RpcPeer } from '@vmlink/rpc';
import { createTransports } from '@vmlink/transport';

const { values: args } = parseArgs({
  options: {
    transport: { type: 'string', default: 'unix' },
    seconds: { type: 'string', default: '3' },
    // Per mode and in-flight level, before measuring it; bench/rpc/vm.mjs passes 5: under
    // TCG the guest needs thousands of calls before its code is optimised.
    'warm-up': { type: 'string', default: '1' },
    size: { type: 'string', default: '32' },
    json: { type: 'string' },
    serve: { type: 'boolean', default: false },
  },
});

async function loadTransports(name) {
  if (name === 'unix') return createTransports([(await import('@vmlink/transport-unix')).unix()]);
  if (name === 'vsock') return createTransports([(await import('@vmlink/transport-vsock')).vsock()]);
  throw new Error(`unknown --transport '${name}' (unix or vsock)`);
}

/** Server process: two listeners (raw echo, RPC echo); prints their addresses as JSON. */
async function serve() {
  const transports = await loadTransports(args.transport);
  let raw;
  let rpc;
  if (args.transport === 'unix') {
    const dir = mkdtempSync(join(tmpdir(), 'vmlink-bench-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    raw = await transports.listen(`unix:${join(dir, 'raw.sock')}`);
    rpc = await transports.listen(`unix:${join(dir, 'rpc.sock')}`);
  } else {
    raw = await transports.listen('vsock://any:any');
    rpc = await transports.listen('vsock://any:any');
  }
  raw.on('connection', (c) => c.on('error', () => {}).pipe(c));
  rpc.on('connection', (c) => {
    c.on('error', () => {});
    new RpcPeer(c).handle('echo', (params) => params);
  });
  const dialable = (uri) => uri.replace('vsock://any:', 'vsock://1:');
  process.stdout.write(`${JSON.stringify({ raw: dialable(raw.address()), rpc: dialable(rpc.address()) })}\n`);
  process.stdin.resume().on('end', () => process.exit(0)); // the parent going away ends us
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Run `once()` with `inFlight` loops in parallel for `seconds`; collect per-op latency in µs. */
async function measure(inFlight, seconds, once) {
  const latencies = [];
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await once();
        latencies.push((performance.now() - t0) * 1000);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { ops: latencies.length, perSecond: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** A raw echo client: sends `size` bytes, waits for `size` bytes back. Loops share one connection by queueing. */
function rawEcho(connection, size) {
  const payload = Buffer.alloc(size, 0x61);
  const waiting = [];
  let buffered = 0;
  connection.on('data', (chunk) => {
    buffered += chunk.length;
    while (buffered >= size && waiting.length > 0) {
      buffered -= size;
      waiting.shift()();
    }
  });
  return () =>
    new Promise((resolve) => {
      waiting.push(resolve);
      connection.write(payload);
    });
}

async function main() {
  const seconds = Number(args.seconds);
  const size = Number(args.size);
  // The server inherits our node flags: `node --cpu-prof bench/rpc/run.mjs` profiles both sides.
  const server = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--serve', '--transport', args.transport], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const addresses = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out));
    });
    server.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  const transports = await loadTransports(args.transport);
  const rawConnection = await transports.dial(addresses.raw);
  const rpc = new RpcPeer(await transports.dial(addresses.rpc));
  const params = 'a'.repeat(size);
  const rawOnce = rawEcho(rawConnection, size);
  const rpcOnce = () => rpc.call('echo', params);

  // Warm up (JIT, socket buffers) each mode at each in-flight level, then measure.
  const warmUp = Number(args['warm-up']);
  const rows = [];
  for (const inFlight of [1, 16]) {
    await measure(inFlight, warmUp, rawOnce);
    await measure(inFlight, warmUp, rpcOnce);
    const raw = await measure(inFlight, seconds, rawOnce);
    const call = await measure(inFlight, seconds, rpcOnce);
    rows.push({ transport: args.transport, inFlight, mode: 'raw echo', ...raw, ratio: 1 });
    rows.push({ transport: args.transport, inFlight, mode: 'rpc call', ...call, ratio: call.perSecond / raw.perSecond });
  }
  rawConnection.destroy();
  await rpc.close();
  server.stdin.end();

  const fmt = (n, d = 0) => n.toFixed(d).padStart(10);
  console.log(`\nRPC vs raw Connection echo: ${args.transport}, ${size}-byte payload, ${seconds}s per row (node ${process.version})\n`);
  console.log('transport  in-flight  mode          round trips/s    p50 µs    p99 µs  vs raw');
  for (const r of rows) {
    console.log(
      `${r.transport.padEnd(10)} ${String(r.inFlight).padStart(9)}  ${r.mode.padEnd(12)} ${fmt(r.perSecond)}      ${fmt(r.p50, 1)}${fmt(r.p99, 1)}   ${r.ratio.toFixed(2)}x`,
    );
  }
  const sequential = rows.find((r) => r.mode === 'rpc call' && r.inFlight === 1);
  const pipelined = rows.find((r) => r.mode === 'rpc call' && r.inFlight === 16);
  console.log(
    `\nRPC overhead, one call in flight: ${sequential.ratio.toFixed(2)}x of raw echo (target >= 0.5x: ${sequential.ratio >= 0.5 ? 'met' : 'NOT met'})` +
      `\n16 in flight: ${pipelined.ratio.toFixed(2)}x (raw echo coalesces 16 payloads per read with no per-message work; RPC parses and answers each)`,
  );
  if (args.json) {
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, `${JSON.stringify({ size, seconds, node: process.version, rows }, null, 2)}\n`);
  }
}

if (args.serve) await serve();
else await main();
