#!/usr/bin/env node
// AIO benchmarks: `node bench/aio/run.mjs [--quick] [--only=throughput|stall] [--runs=N] [--seconds=S]
//   [--slice=S] [--bench=TEXT] [--scenario=TEXT]` (throughput contestants alternate in slices of
//   S seconds; throughput benchmarks / stall workloads whose name contains TEXT at the start of a word).
// Prints markdown tables and writes JSON to bench/results/. Installs nothing: it says
// what is missing (fio, the addon, the built packages).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, '..', 'results');

const USAGE = `usage: node bench/aio/run.mjs [--quick] [--only=throughput|stall] [--runs=N] [--seconds=S]
       [--slice=S] [--bench=TEXT] [--scenario=TEXT]
  --quick       256 MiB file, 2 s runs, 1 round (a smoke run; numbers not comparable)
  --only        run only the throughput benchmarks or only the stall suite
  --runs        rounds per benchmark (default 3); tables show medians
  --seconds     seconds per contestant per round (default 10), cut into --slice second slices (default 2)
  --bench       throughput benchmarks whose name contains TEXT at a word start (e.g. --bench=warm; "2 in flight" is not "32 in flight")
  --scenario    stall workloads whose name contains TEXT at a word start`;

function parseCommandLine() {
  try {
    return parseArgs({ options: OPTIONS }).values;
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h', default: false },
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  runs: { type: 'string' },
  seconds: { type: 'string' },
  slice: { type: 'string' },
  scenario: { type: 'string' },
  bench: { type: 'string' },
};
const args = parseCommandLine();
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

const GiB = 1 << 30;
const cfg = {
  quick: args.quick,
  fileSize: args.quick ? 256 << 20 : GiB,
  unalignedSize: args.quick ? 64 << 20 : 256 << 20,
  appendCap: args.quick ? 256 << 20 : 2 * GiB,
  seconds: Number(args.seconds ?? (args.quick ? 2 : 10)),
  runs: Number(args.runs ?? (args.quick ? 1 : 3)),
  slice: Number(args.slice ?? 2),
  scenario: args.scenario,
  bench: args.bench,
  log: (line) => console.log(line),
};

async function missingPrerequisites() {
  const missing = [];
  const { fioAvailable } = await import('./lib/fio.mjs');
  cfg.fio = fioAvailable();
  if (!cfg.fio) missing.push('fio (apt-get install fio): fio columns are left out');
  try {
    const native = await import('@vmlink/native');
    native.default.loadBinding();
  } catch (error) {
    return [`the addon: ${error.message} (npm run build -w @vmlink/native)`];
  }
  for (const pkg of ['@vmlink/aio', '@vmlink/aio-threadpool', '@vmlink/aio-iosubmit']) {
    try {
      await import(pkg);
    } catch {
      return [`${pkg} is not built (npm run build)`];
    }
  }
  return missing;
}

const problems = await missingPrerequisites();
for (const problem of problems) console.log(`missing: ${problem}`);
if (problems.some((p) => !p.startsWith('fio'))) process.exit(1);

const { randomDataFile } = await import('./lib/files.mjs');
const { throughputSuite } = await import('./throughput.mjs');
const { FLOOR_NAME, stallSuite } = await import('./stall.mjs');
const { table, fmt, fmtInt, percent } = await import('./lib/report.mjs');

console.log(`# AIO benchmarks (${cfg.quick ? 'quick' : 'full'}: ${cfg.fileSize >> 20} MiB file, ${cfg.seconds} s runs in ${cfg.slice} s slices, ${cfg.runs} round(s), contestants interleaved, medians)`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' / ');
console.log(`node ${process.version}, kernel ${release()}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${load()} (1/5/15 min)\n`);
console.log('preparing data files (random bytes, written, not fallocated)...');
cfg.file = randomDataFile(`data-${cfg.fileSize >> 20}M.bin`, cfg.fileSize);
const { diskInterrupts } = await import('./lib/cpu.mjs');
const interrupts = diskInterrupts(cfg.file);
if (interrupts !== undefined) console.log(`the data file's disk takes its interrupts on ${interrupts} (since boot)`);
cfg.unalignedFile = randomDataFile(`unaligned-${cfg.unalignedSize >> 20}M.bin`, cfg.unalignedSize);

const result = { date: new Date().toISOString(), loadAverageAtStart: loadavg(), node: process.version, kernel: release(), cores: cpus().length, diskInterrupts: interrupts, config: { ...cfg, log: undefined } };

if (args.only === undefined || args.only === 'throughput') {
  console.log('\n## Throughput');
  const rows = await throughputSuite(cfg);
  result.throughput = rows;
  console.log(
    '\n' +
      table(
        ['benchmark', 'engine', 'IOPS (median)', 'MB/s', 'vs', 'ratio (median of rounds)', 'per-round ratios', 'target', 'cores busy', 'CPU us/request', 'host steal'],
        rows.map((r) => [
          r.bench,
          r.engine,
          fmtInt(r.iops),
          fmt(r.mbps, 1),
          r.vs ?? '',
          r.ratio === undefined ? '' : `${fmt(r.ratio)}x`,
          r.roundRatios === undefined ? '' : r.roundRatios.map((x) => fmt(x)).join(', '),
          r.target === undefined ? (r.ratio === undefined ? '' : 'reference') : `>= ${r.target}x ${r.ratio >= r.target ? 'met' : 'NOT met'}`,
          fmt(r.cores),
          fmt(r.cpuUsPerOp, 1),
          percent(r.steal),
        ]),
      ),
  );
  const fioCommands = [...new Set(rows.filter((r) => r.command !== undefined).map((r) => r.command))];
  if (fioCommands.length > 0) console.log(`\nfio commands:\n${fioCommands.map((c) => `    ${c}`).join('\n')}`);
}

if (args.only === undefined || args.only === 'stall') {
  console.log('\n## Stall suite (event-loop delay beyond the 1 ms monitor interval)');
  const { rows, floor, floorMissing } = await stallSuite(cfg);
  result.stall = rows;
  // The C floor's longest gap, after each workload's engines: the max a loop delay could not beat then.
  result.stallFloor = floor;
  if (floorMissing !== undefined) result.stallFloorMissing = floorMissing;
  const floorRow = (scenario) => {
    const f = floor.find((x) => x.scenario === scenario);
    return f === undefined ? [] : [[scenario, FLOOR_NAME, `- / - / ${fmt(f.median.maxGapMs)}`, 'n/a', '', '', '', '']];
  };
  console.log(
    '\n' +
      table(
        ['workload', 'engine', 'loop delay p50 / p99 / max (ms)', 'submit time p99 / max (us)', 'ops/s', 'routed', 'NOWAIT fallbacks', 'host steal'],
        rows.flatMap((r, i) => {
          const m = r.median;
          const row = [
            r.scenario,
            r.engine,
            `${fmt(m.loopDelayMs.p50)} / ${fmt(m.loopDelayMs.p99)} / ${fmt(m.loopDelayMs.max)}`,
            `${fmtInt(m.submitTimeUs.p99)} / ${fmtInt(m.submitTimeUs.max)}`,
            fmtInt(m.opsPerSec),
            fmtInt(m.guardRouted),
            fmtInt(m.nowaitFallbacks),
            percent(m.steal),
          ];
          const lastOfScenario = rows[i + 1]?.scenario !== r.scenario;
          return lastOfScenario ? [row, ...floorRow(r.scenario)] : [row];
        }),
      ),
  );
}

mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, `aio-${cfg.quick ? 'quick-' : ''}${result.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify(result, null, 2));
console.log(`\nload average at the end: ${load()} (1/5/15 min; other work on the machine moves every number)`);
console.log(`\nJSON: ${out}`);
