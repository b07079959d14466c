#!/usr/bin/env node
// `npm run bench [-- NAME... [--quick]]`: runs the project's benchmarks one after the other.
// Each prints its own tables and writes JSON under bench/results/ (git-ignored); after each,
// its charts are drawn from that JSON into docs/bench/*.svg (committed; the READMEs show
// them). `npm run bench -- charts [NAME...]` only redraws them from the newest saved JSON.
// They measure; they never assert. Build first (`npm run build`); benchmarks install nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartsOf, renderCharts, resultsDir } from './lib/chart.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const suites = {
  aio: { script: 'aio/run.mjs', about: 'AIO backends vs fio and Node fs, and the event-loop stall suite (host)' },
  rpc: { script: 'rpc/run.mjs', about: 'RPC round trips vs raw Connection echo over unix (host)' },
  'rpc-vsock': { script: 'rpc/vm.mjs', about: 'the same over vsock loopback (in a testvm guest)' },
  vsock: { script: 'vsock/run.mjs', about: '@vmlink/vsock vs socat and TCP loopback (in a testvm guest)' },
  'virtio-serial': { script: 'virtio-serial/run.mjs', about: 'RPC over virtio-serial host<->guest vs socat' },
  hvsock: { script: 'hvsock/run.mjs', about: 'hybrid vsock through the vhost-user device vs virtio-serial (testvm guest)' },
  apps: { script: 'apps/run.mjs', about: 'vmlink bench against a local agent per --aio backend' },
};

// Suites that write JSON only when asked: where this run asks them to (a new file per run,
// as bench/aio does, so the newest is the one the charts take).
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const repoRoot = join(here, '..');
const jsonOf = (name) => join(resultsDir, `${name}-${stamp}.json`);
const jsonFlag = {
  // bench/vsock resolves its --json against the repository root; the others against the cwd.
  vsock: () => ['--json', relative(repoRoot, jsonOf('vsock'))],
  hvsock: () => ['--json', jsonOf('hvsock')],
  'virtio-serial': () => ['--json', jsonOf('virtio-serial')],
  rpc: () => ['--json', jsonOf('rpc')],
};

/**
 * Adds what the chart captions need and these benches do not record (the host, the load
 * before and after, the date) to the JSON this run asked for, as `runContext`.
 */
function addRunContext(file, loadBefore) {
  if (!existsSync(file)) return;
  const result = JSON.parse(readFileSync(file, 'utf8'));
  result.runContext ??= {
    date: new Date().toISOString(),
    loadAverage: { before: loadBefore, after: loadavg() },
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    kernel: release(),
    node: process.version,
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
}

const args = process.argv.slice(2);
// Names come first; from the first flag on, everything (values too: `--mib 64`) goes to the suites.
const firstFlag = args.findIndex((a) => a.startsWith('-'));
const names = firstFlag < 0 ? args : args.slice(0, firstFlag);
const passThrough = firstFlag < 0 ? [] : args.slice(firstFlag);
if (passThrough.includes('--help')) {
  console.log('usage: npm run bench -- [NAME...] [--quick] [SUITE FLAGS...]');
  console.log('       npm run bench -- charts [NAME...]   (redraw docs/bench/*.svg from the newest saved JSON; runs nothing)\n');
  for (const [name, { about }] of Object.entries(suites)) console.log(`  ${name.padEnd(14)} ${about}`);
  process.exit(0);
}
const chartsOnly = names[0] === 'charts';
if (chartsOnly) names.shift();
const unknown = names.filter((n) => !(n in suites));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.map((n) => `'${n}'`).join(', ')}; known: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}

/** Draws the charts of `benches` (every chart when empty); a chart that fails is a failure of its bench. */
async function drawCharts(benches, failed) {
  try {
    await renderCharts(benches);
  } catch (error) {
    console.error(`bench: charts of ${benches.join(', ') || 'every bench'} failed: ${error.stack}`);
    failed.push(`charts ${benches.join(', ')}`.trim());
  }
}

const failed = [];
if (chartsOnly) {
  for (const name of names.filter((n) => chartsOf(n).length === 0)) console.log(`chart ${name}: none (its output has no baseline to draw a ratio against)`);
  await drawCharts(names, failed);
} else {
  for (const name of names.length > 0 ? names : Object.keys(suites)) {
    const { script, about } = suites[name];
    console.log(`\n## bench ${name}: ${about}\n`);
    // Only aio and vsock know --quick today; the others take their own flags (see their READMEs).
    const flags = ['aio', 'vsock'].includes(name) ? [...passThrough] : passThrough.filter((f) => f !== '--quick');
    const asked = flags.some((f) => f === '--json' || f.startsWith('--json='));
    if (!asked && jsonFlag[name]) flags.push(...jsonFlag[name]());
    const loadBefore = loadavg();
    const result = spawnSync(process.execPath, [join(here, script), ...flags], { stdio: 'inherit' });
    if (result.status !== 0) {
      failed.push(`${name} (exit ${result.status ?? result.signal})`);
      continue;
    }
    if (!asked && jsonFlag[name]) addRunContext(jsonOf(name), loadBefore);
    if (chartsOf(name).length > 0) await drawCharts([name], failed);
  }
}
if (failed.length > 0) {
  console.error(`\nbench: failed: ${failed.join(', ')}`);
  process.exit(1);
}
