// The stall suite: workloads where io_submit does the I/O inside the call, run on each
// engine while perf_hooks.monitorEventLoopDelay watches the event loop.
import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nameMatches } from './lib/filter.mjs';
import { DIRECT_READ, DIRECT_RW } from './lib/engines.mjs';
import { benchPath, dropCache } from './lib/files.mjs';
import { hiccupMeter } from './lib/floor.mjs';
import { median, percent } from './lib/report.mjs';

const STALL_RUN_SCRIPT = fileURLToPath(new URL('./lib/stall-run.mjs', import.meta.url));

// Node's own FileHandle (libuv's pool) is the reference: what the machine gives any
// program doing this I/O right now (no target). 'threadpool idle workers' is the opt-in
// workerScheduling: 'idle', shown beside the default (no target either).
export const STALL_ENGINES = ['iosubmit strict', 'iosubmit', 'threadpool', 'threadpool idle workers', 'node FileHandle'];

/**
 * Each scenario: prepare() -> { path, flags, offsets, write, cleanup? } (what one run's
 * requests do, as data for lib/stall-run.mjs: offsets as its offsetSource takes them).
 * `cfg`: { file, fileSize, unalignedFile, unalignedSize, appendCap }.
 */
function scenarios(cfg) {
  return [
    {
      name: 'O_DIRECT appends (64 KiB, 4 in flight)',
      depth: 4,
      blockSize: 64 * 1024,
      prepare: () => {
        const path = benchPath('stall-append.bin');
        closeSync(openSync(path, 'w'));
        return { path, flags: DIRECT_RW, cleanup: () => rmSync(path, { force: true }), offsets: { kind: 'append', cap: cfg.appendCap }, write: true };
      },
    },
    {
      name: 'O_DIRECT writes to a sparse file (4 KiB random, 32 in flight)',
      depth: 32,
      blockSize: 4096,
      prepare: () => {
        const path = benchPath('stall-sparse.bin');
        const fd = openSync(path, 'w');
        ftruncateSync(fd, cfg.fileSize);
        closeSync(fd);
        return { path, flags: DIRECT_RW, cleanup: () => rmSync(path, { force: true }), offsets: { kind: 'random', size: cfg.fileSize, align: 4096 }, write: true };
      },
    },
    {
      // Nothing blocks here: the loop delay a busy engine's completions cost (the completion budget's job).
      name: 'O_DIRECT reads at full speed (4 KiB random, 32 in flight)',
      depth: 32,
      blockSize: 4096,
      prepare: () => {
        dropCache(cfg.file);
        return { path: cfg.file, flags: DIRECT_READ, offsets: { kind: 'random', size: cfg.fileSize, align: 4096 }, write: false };
      },
    },
    {
      name: 'cold buffered reads (4 KiB random, 32 in flight)',
      depth: 32,
      blockSize: 4096,
      prepare: () => {
        dropCache(cfg.file);
        return { path: cfg.file, flags: 'r', offsets: { kind: 'random', size: cfg.fileSize, align: 4096 }, write: false };
      },
    },
    {
      name: 'unaligned buffered writes (2 KiB at +1024, cold, 32 in flight)',
      depth: 32,
      blockSize: 2048,
      prepare: () => {
        syncFile(cfg.unalignedFile);
        dropCache(cfg.unalignedFile);
        return { path: cfg.unalignedFile, flags: 'r+', offsets: { kind: 'random', size: cfg.unalignedSize, align: 4096, skew: 1024 }, write: true };
      },
    },
  ];
}

function syncFile(path) {
  const fd = openSync(path, 'r');
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** One run of `engine` on a prepared workload, in a fresh Node process (lib/stall-run.mjs). */
function stallRun(cfg, scenario, engine) {
  const setup = scenario.prepare();
  try {
    const job = { engine, path: setup.path, flags: setup.flags, depth: scenario.depth, blockSize: scenario.blockSize, seconds: cfg.seconds, offsets: setup.offsets, write: setup.write };
    return JSON.parse(execFileSync(process.execPath, [STALL_RUN_SCRIPT, JSON.stringify(job)], { encoding: 'utf8', maxBuffer: 1 << 20 }));
  } finally {
    setup.cleanup?.();
  }
}

/** The floor's row name: no engine, no I/O; only its max is comparable with a loop delay. */
export const FLOOR_NAME = 'C floor (a spinning thread per CPU, no I/O)';

/**
 * Returns { rows, floor }: rows { scenario, engine, runs: [...], median: {...} }, `cfg.runs`
 * runs each; floor { scenario, runs: [{ cpus, maxGapMs }], median: { maxGapMs } } per
 * workload (absent without a C compiler: `floorMissing`). The runs go in rounds, as the
 * throughput benchmarks' slices do: each round runs every engine and the floor once, the
 * order rotating from round to round, so that a host whose noise drifts over minutes
 * treats them alike (until the eighteenth session each engine ran all its runs in a block
 * and the floor after them, FileHandle always last).
 */
export async function stallSuite(cfg) {
  const rows = [];
  const floor = [];
  const meter = hiccupMeter();
  if (typeof meter === 'string') cfg.log(`  ${meter}`);
  const FLOOR = Symbol('floor');
  const contestants = typeof meter === 'string' ? [...STALL_ENGINES] : [...STALL_ENGINES, FLOOR];
  for (const scenario of scenarios(cfg).filter((s) => nameMatches(s.name, cfg.scenario))) {
    const runsOf = new Map(contestants.map((contestant) => [contestant, []]));
    for (let round = 0; round < cfg.runs; round++) {
      for (let k = 0; k < contestants.length; k++) {
        const contestant = contestants[(k + round) % contestants.length];
        runsOf.get(contestant).push(contestant === FLOOR ? meter(cfg.seconds) : stallRun(cfg, scenario, contestant));
      }
    }
    for (const engine of STALL_ENGINES) {
      const runs = runsOf.get(engine);
      const med = (pick) => {
        const values = runs.map(pick).filter((v) => v !== undefined);
        return values.length === 0 ? undefined : median(values);
      };
      const row = {
        scenario: scenario.name,
        engine,
        runs,
        median: {
          opsPerSec: med((r) => r.opsPerSec),
          steal: med((r) => r.steal),
          loopDelayMs: { p50: med((r) => r.loopDelayMs.p50), p99: med((r) => r.loopDelayMs.p99), max: med((r) => r.loopDelayMs.max) },
          submitTimeUs: { p99: med((r) => r.submitTimeUs?.p99), max: med((r) => r.submitTimeUs?.max) },
          guardRouted: med((r) => r.guardRouted),
          nowaitFallbacks: med((r) => r.nowaitFallbacks),
        },
      };
      rows.push(row);
      const m = row.median;
      cfg.log(
        `  ${scenario.name} / ${engine}: loop delay p99 ${m.loopDelayMs.p99.toFixed(2)} ms, max ${m.loopDelayMs.max.toFixed(2)} ms; ` +
          (m.submitTimeUs.p99 === undefined ? '' : `submit p99 ${Math.round(m.submitTimeUs.p99)} us, max ${Math.round(m.submitTimeUs.max)} us; `) +
          `${Math.round(m.opsPerSec)} ops/s; ` +
          `host steal ${percent(m.steal)}`,
      );
    }
    if (typeof meter !== 'string') {
      const runs = runsOf.get(FLOOR);
      const maxGapMs = median(runs.map((r) => r.maxGapMs));
      floor.push({ scenario: scenario.name, runs, median: { maxGapMs } });
      cfg.log(`  ${scenario.name} / ${FLOOR_NAME}: longest gap ${maxGapMs.toFixed(2)} ms (per run, per CPU: ${runs.map((r) => r.cpus.map((c) => c.maxGapMs.toFixed(1)).join('/')).join(', ')})`);
    }
  }
  return { rows, floor, floorMissing: typeof meter === 'string' ? meter : undefined };
}
