#!/usr/bin/env node
// `npm run bench [-- NAME... [--quick]]`: runs the project's benchmarks one after the other.
// Each prints its own tables (and writes JSON under bench/results/). They measure; they
// never assert. Build first (`npm run build`); benchmarks install nothing.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

const args = process.argv.slice(2);
// Names come first; from the first flag on, everything (values too: `--mib 64`) goes to the suites.
const firstFlag = args.findIndex((a) => a.startsWith('-'));
const names = firstFlag < 0 ? args : args.slice(0, firstFlag);
const passThrough = firstFlag < 0 ? [] : args.slice(firstFlag);
if (passThrough.includes('--help')) {
  console.log('usage: npm run bench -- [NAME...] [--quick] [SUITE FLAGS...]\n');
  for (const [name, { about }] of Object.entries(suites)) console.log(`  ${name.padEnd(14)} ${about}`);
  process.exit(0);
}
const unknown = names.filter((n) => !(n in suites));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.map((n) => `'${n}'`).join(', ')}; known: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}

const failed = [];
for (const name of names.length > 0 ? names : Object.keys(suites)) {
  const { script, about } = suites[name];
  console.log(`\n## bench ${name}: ${about}\n`);
  // Only aio knows --quick today; the others take their own flags (see their READMEs).
  const flags = ['aio', 'vsock'].includes(name) ? passThrough : passThrough.filter((f) => f !== '--quick');
  const result = spawnSync(process.execPath, [join(here, script), ...flags], { stdio: 'inherit' });
  if (result.status !== 0) failed.push(`${name} (exit ${result.status ?? result.signal})`);
}
if (failed.length > 0) {
  console.error(`\nbench: failed: ${failed.join(', ')}`);
  process.exit(1);
}
