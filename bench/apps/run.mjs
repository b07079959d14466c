#!/usr/bin/env node
// vmlink-guest + vmlink CLI over unix on the host, once per AIO backend: ping round trips
// and bulk cp throughput both ways (`vmlink bench --json`), as one table.
//
//   npm run build && node bench/apps/run.mjs [--size 64] [--rounds 500] [--json bench/results/apps.json]
//
// Each backend gets a fresh agent process with its own temp root; the numbers include the
// SHA-256 on both ends and the fsync of every upload, as a real copy does.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '500' },
    backends: { type: 'string', default: 'fs,threadpool,iosubmit' },
    json: { type: 'string' },
  },
});
const repo = fileURLToPath(new URL('../..', import.meta.url));
const GUEST = join(repo, 'apps/guest/dist/cli.js');
const HOST = join(repo, 'apps/host/dist/cli.js');

async function startAgent(aio, root, socket) {
  const child = spawn(process.execPath, [GUEST, '--listen', `unix:${socket}`, '--root', root, '--aio', aio, '--quiet'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (t) => (log += t));
  const deadline = Date.now() + 20_000;
  // --quiet logs only errors: wait for the socket to answer a ping instead.
  for (;;) {
    const ping = spawnSync(process.execPath, [HOST, 'ping', `unix:${socket}`], { encoding: 'utf8' });
    if (ping.status === 0) return child;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`agent (--aio ${aio}) did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const rows = [];
for (const aio of args.backends.split(',')) {
  const work = mkdtempSync(join(tmpdir(), `vmlink-bench-apps-${aio}-`));
  const socket = join(work, 'agent.sock');
  const root = join(work, 'root');
  mkdirSync(root);
  const agent = await startAgent(aio, root, socket);
  try {
    const run = spawnSync(process.execPath, [HOST, 'bench', `unix:${socket}`, '--json', '--rounds', args.rounds, '--size', args.size], {
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(`vmlink bench (--aio ${aio}) failed: ${run.stderr}`);
    rows.push({ aio, ...JSON.parse(run.stdout) });
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
}

console.log(`vmlink over unix, ${args.size} MiB copies, ${args.rounds} pings (node ${process.version})`);
console.log('| --aio | pings/s | ping p50 ms | ping p99 ms | upload MiB/s | download MiB/s |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(`| ${r.aio} | ${r.ping.perSecond} | ${r.ping.p50Ms} | ${r.ping.p99Ms} | ${r.upload.mibPerSecond} | ${r.download.mibPerSecond} |`);
}
if (args.json) {
  mkdirSync(dirname(args.json), { recursive: true });
  writeFileSync(args.json, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2)}\n`);
}
