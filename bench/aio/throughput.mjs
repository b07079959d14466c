// Throughput benchmarks: our engines against fio (and Node's FileHandle) on the same file.
//
// The virtual disk of a shared machine drifts a lot within minutes (fio alone has given
// 1k, 12k and 72k IOPS in three back-to-back 10 s runs), so engines are never measured in
// separate blocks: each round runs every contestant once, the order rotates from round to
// round, and a ratio is taken inside each round. The reported ratio is the median of those
// per-round ratios; the per-engine medians are shown beside it.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { busyCores, cpuSnapshot, stealShare } from './lib/cpu.mjs';
import { DIRECT_READ } from './lib/engines.mjs';
import { dropCache, warmCache } from './lib/files.mjs';
import { runFio } from './lib/fio.mjs';
import { nameMatches } from './lib/filter.mjs';
import { median, percent } from './lib/report.mjs';

/** The script that runs one slice of an engine contestant in a fresh process (as fio runs). */
const SLICE_SCRIPT = fileURLToPath(new URL('./lib/slice.mjs', import.meta.url));
/** As fio's --ramp_time=1 (lib/fio.mjs): both sides settle for a second before counting. */
const WARMUP_SECONDS = 1;

/**
 * A contestant that runs one of our engines (or Node's FileHandle) on a closed-loop load,
 * each slice in a fresh Node process, as each fio slice is a fresh fio: in the long-lived
 * bench process a contestant inherited the heap, the JIT state and the threads' CPU
 * placement of every contestant before it, and on a 2-core VM whose disk interrupts all
 * land on one CPU where the submitting thread runs moves IOPS by ~30%. The engine is opened
 * and closed within the slice, so only one engine (and its threads) exists at a time, as
 * in an application that picked one. `measure(seconds)` resolves to { ops, seconds }.
 */
function engineContestant(cfg, engine, { flags, depth, blockSize, pattern, options }) {
  let cursor = 0;
  return {
    measure: async (seconds) => {
      const job = { engine, file: cfg.file, fileSize: cfg.fileSize, flags, depth, blockSize, pattern, options, seconds, warmupSeconds: WARMUP_SECONDS, cursor };
      const out = execFileSync(process.execPath, [SLICE_SCRIPT, JSON.stringify(job)], { encoding: 'utf8', maxBuffer: 1 << 20 });
      const result = JSON.parse(out.trim().split('\n').at(-1));
      cursor = result.cursor;
      return { ops: result.ops, seconds: result.seconds };
    },
  };
}

function fioContestant(cfg, job) {
  let command;
  return {
    measure: async (seconds) => {
      const result = runFio(cfg.file, cfg.fileSize, seconds, job);
      command = result.command;
      return { ops: result.iops * seconds, seconds };
    },
    get command() {
      return command;
    },
  };
}

/**
 * Runs `cfg.runs` rounds. In each round every contestant runs for `cfg.seconds` in all,
 * cut into slices of `cfg.slice` seconds that alternate between the contestants (the order
 * rotates per slice and per round), so that a disk which drifts within seconds treats them
 * alike. Returns { [name]: values[] } (IOPS per round: all ops over all measured seconds,
 * in round order), with the host steal share of each round in `values[name].steal` and the
 * machine's busy cores while that contestant ran in `values[name].cores`.
 */
async function rounds(cfg, contestants) {
  const names = Object.keys(contestants);
  const values = Object.fromEntries(names.map((name) => [name, Object.assign([], { steal: [], cores: [] })]));
  const slices = Math.max(1, Math.round(cfg.seconds / cfg.slice));
  const sliceSeconds = cfg.seconds / slices;
  for (let round = 0; round < cfg.runs; round++) {
    const totals = Object.fromEntries(names.map((name) => [name, { ops: 0, seconds: 0, steal: 0, stealKnown: true, cores: 0, coresKnown: true }]));
    for (let s = 0; s < slices; s++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + round + s) % names.length];
        const before = cpuSnapshot();
        const { ops, seconds } = await contestants[name].measure(sliceSeconds);
        const after = cpuSnapshot();
        const steal = stealShare(before, after);
        const cores = busyCores(before, after, availableParallelism());
        const total = totals[name];
        total.ops += ops;
        total.seconds += seconds;
        if (steal === undefined) total.stealKnown = false;
        else total.steal += steal / slices;
        if (cores === undefined) total.coresKnown = false;
        else total.cores += cores / slices;
      }
    }
    for (const name of names) {
      const total = totals[name];
      values[name][round] = total.ops / total.seconds;
      values[name].steal[round] = total.stealKnown ? total.steal : undefined;
      values[name].cores[round] = total.coresKnown ? total.cores : undefined;
    }
  }
  return values;
}

function row(bench, engine, values, blockSize) {
  const iops = median(values);
  const steals = (values.steal ?? []).filter((v) => v !== undefined);
  const cores = (values.cores ?? []).filter((v) => v !== undefined);
  const busy = cores.length > 0 ? median(cores) : undefined;
  // CPU time per request, machine-wide (kernel and interrupts included): what the IOPS cost.
  const cpuUsPerOp = busy !== undefined && iops > 0 ? (busy * 1e6) / iops : undefined;
  return { bench, engine, iops, mbps: (iops * blockSize) / 1e6, values: [...values], steal: steals.length > 0 ? median(steals) : undefined, cores: busy, cpuUsPerOp };
}

/** Adds ratio fields to `subject` against `baseline`: the median of per-round ratios. */
function compare(subject, baseline, target) {
  subject.roundRatios = subject.values.map((v, i) => v / baseline.values[i]);
  subject.ratio = median(subject.roundRatios);
  subject.baseline = baseline;
  subject.target = target;
}

/** fio's batched submit and reap: what a batching engine can reach (aio-facts.md, last section). */
export const FIO_BATCH = { iodepth_batch_submit: 16, iodepth_batch_complete_max: 16 };

/** `--bench=TEXT`: only the benchmarks whose name contains TEXT at a word start. */
function selected(cfg, bench) {
  return nameMatches(bench, cfg.bench);
}

function fioLabel(job) {
  const batched = job.iodepth_batch_submit !== undefined ? ' batched' : '';
  return `fio ${job.ioengine}${job.numjobs ? ` numjobs=${job.numjobs}` : ` iodepth=${job.iodepth}`}${batched}`;
}

/**
 * Returns rows: { bench, engine, iops, mbps, values, vs?, baseline?, ratio?, roundRatios?, target?, command? }.
 * An engine row compared with several baselines appears once per baseline (`vs` names it);
 * only the issue's baseline carries a target. `cfg`: { file, fileSize, seconds, runs, fio (bool), log }.
 */
export async function throughputSuite(cfg) {
  const rows = [];
  const log = (r) => {
    const vs = r.vs === undefined ? '' : ` vs ${r.vs}`;
    const ratios = r.roundRatios ? `; ratio ${r.ratio.toFixed(2)}x (rounds ${r.roundRatios.map((x) => x.toFixed(2)).join(', ')})` : '';
    const target = r.target === undefined ? '' : `, target >= ${r.target}x ${r.ratio >= r.target ? 'met' : 'NOT met'}`;
    const steal = r.steal === undefined ? '' : `; host steal ${percent(r.steal)}`;
    const cpu = r.cores === undefined ? '' : `; ${r.cores.toFixed(2)} cores busy, ${r.cpuUsPerOp.toFixed(1)} CPU us/request`;
    cfg.log(`  ${r.bench} / ${r.engine}${vs}: ${Math.round(r.iops)} IOPS (${r.values.map(Math.round).join(', ')})${ratios}${target}${cpu}${steal}`);
  };

  /**
   * One of our engines against fio jobs, all in the same rounds. `jobs`: [{ job, target? }],
   * the first being the baseline the target is set against; the others are shown with
   * their ratio (continuity with older runs, or a reference a user might pick instead).
   */
  const vsFio = async (bench, engineName, engineLabel, load, jobs) => {
    if (!selected(cfg, bench)) return;
    const ours = engineContestant(cfg, engineName, load);
    if (!cfg.fio) {
      const values = await rounds(cfg, { ours });
      const r = row(bench, engineLabel, values.ours, load.blockSize);
      rows.push(r);
      log(r);
      return;
    }
    const fios = jobs.map(({ job }) => fioContestant(cfg, job));
    const contestants = { ours };
    fios.forEach((fio, i) => (contestants[`fio${i}`] = fio));
    const values = await rounds(cfg, contestants);
    const fioRows = jobs.map(({ job }, i) => ({ ...row(bench, fioLabel(job), values[`fio${i}`], load.blockSize), command: fios[i].command }));
    const oursRows = jobs.map(({ target }, i) => {
      const r = row(bench, engineLabel, values.ours, load.blockSize);
      compare(r, fioRows[i], target);
      r.vs = fioRows[i].engine;
      return r;
    });
    for (const r of [...oursRows, ...fioRows]) {
      rows.push(r);
      log(r);
    }
  };

  // Direct reads never touch the cache, but dirty or cached pages make NOWAIT say EAGAIN.
  dropCache(cfg.file);

  const randRead = { rw: 'randread', bs: '4k', direct: 1 };
  await vsFio(
    '4 KiB random read, O_DIRECT, 32 in flight',
    'iosubmit',
    'iosubmit',
    { flags: DIRECT_READ, depth: 32, blockSize: 4096 },
    [
      { job: { ...randRead, ioengine: 'libaio', iodepth: 32, ...FIO_BATCH }, target: 0.9 },
      { job: { ...randRead, ioengine: 'libaio', iodepth: 32 } },
      { job: { ...randRead, ioengine: 'io_uring', iodepth: 32, ...FIO_BATCH } },
    ],
  );

  // The thread pool at its defaults (it sizes itself), against fio with one thread per
  // request in flight.
  for (const depth of [32, 2]) {
    await vsFio(
      `4 KiB random read, O_DIRECT, ${depth} in flight`,
      'threadpool',
      'threadpool (defaults)',
      { flags: DIRECT_READ, depth, blockSize: 4096 },
      [{ job: { ...randRead, ioengine: 'psync', numjobs: depth }, target: 0.9 }],
    );
  }

  // Same block size on both sides, so the IOPS ratio is the MB/s ratio.
  const seqRead = { rw: 'read', bs: '128k', direct: 1 };
  await vsFio(
    '128 KiB sequential read, O_DIRECT, 16 in flight',
    'iosubmit',
    'iosubmit',
    { flags: DIRECT_READ, depth: 16, blockSize: 128 * 1024, pattern: 'seq' },
    [
      { job: { ...seqRead, ioengine: 'libaio', iodepth: 16, ...FIO_BATCH }, target: 0.95 },
      { job: { ...seqRead, ioengine: 'libaio', iodepth: 16 } },
    ],
  );

  const bench = '4 KiB random read, buffered, warm cache, 32 in flight';
  if (!selected(cfg, bench)) return rows;
  warmCache(cfg.file);
  const load = { flags: 'r', depth: 32, blockSize: 4096 };
  const engines = ['node FileHandle', 'iosubmit', 'threadpool', 'fs'];
  const contestants = Object.fromEntries(engines.map((engine) => [engine, engineContestant(cfg, engine, load)]));
  const values = await rounds(cfg, contestants);
  const node = row(bench, 'node FileHandle', values['node FileHandle'], load.blockSize);
  rows.push(node);
  log(node);
  for (const engine of engines.slice(1)) {
    const r = row(bench, engine, values[engine], load.blockSize);
    // The fs backend is the reference (libuv's pool, one crossing per request): no target.
    compare(r, node, engine === 'fs' ? undefined : 4);
    r.vs = node.engine;
    rows.push(r);
    log(r);
  }
  return rows;
}
