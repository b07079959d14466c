// Throughput benchmarks: our engines against fio (and Node's FileHandle) on the same file.
//
// The virtual disk of a shared machine drifts a lot within minutes (fio alone has given
// 1k, 12k and 72k IOPS in three back-to-back 10 s runs), so engines are never measured in
// separate blocks: each round runs every contestant once, the order rotates from round to
// round, and a ratio is taken inside each round. The reported ratio is the median of those
// per-round ratios; the per-engine medians are shown beside it.
import { defaultThreadCount } from '@vmlink/aio-threadpool';
import { cpuSnapshot, stealShare } from './lib/cpu.mjs';
import { buffers, DIRECT_READ, openEngine } from './lib/engines.mjs';
import { dropCache, warmCache } from './lib/files.mjs';
import { runFio } from './lib/fio.mjs';
import { closedLoop, randomOffset } from './lib/load.mjs';
import { median, percent } from './lib/report.mjs';

/**
 * A contestant that runs one of our engines (or Node's FileHandle) on a closed-loop load.
 * The engine is opened for each slice and closed after it, so that only one engine (and
 * its threads) exists at a time, as in an application that picked one.
 * `measure(seconds)` resolves to { ops, seconds }.
 */
function engineContestant(cfg, engine, { flags, depth, blockSize, pattern, options }) {
  const bufs = buffers(depth, blockSize);
  let cursor = 0;
  const nextOffset = pattern === 'seq'
    ? () => {
        const offset = cursor;
        cursor = (cursor + blockSize) % cfg.fileSize;
        return offset;
      }
    : () => randomOffset(cfg.fileSize, blockSize);
  return {
    measure: async (seconds) => {
      const io = await openEngine(engine, cfg.file, flags, options);
      try {
        const load = await closedLoop({ depth, seconds, op: (w) => io.read(bufs[w], nextOffset()) });
        return { ops: load.ops, seconds: load.seconds };
      } finally {
        await io.close();
      }
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
 * in round order), with the host steal share of each round in `values[name].steal`.
 */
async function rounds(cfg, contestants) {
  const names = Object.keys(contestants);
  const values = Object.fromEntries(names.map((name) => [name, Object.assign([], { steal: [] })]));
  const slices = Math.max(1, Math.round(cfg.seconds / cfg.slice));
  const sliceSeconds = cfg.seconds / slices;
  for (let round = 0; round < cfg.runs; round++) {
    const totals = Object.fromEntries(names.map((name) => [name, { ops: 0, seconds: 0, steal: 0, stealKnown: true }]));
    for (let s = 0; s < slices; s++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + round + s) % names.length];
        const before = cpuSnapshot();
        const { ops, seconds } = await contestants[name].measure(sliceSeconds);
        const steal = stealShare(before, cpuSnapshot());
        const total = totals[name];
        total.ops += ops;
        total.seconds += seconds;
        if (steal === undefined) total.stealKnown = false;
        else total.steal += steal / slices;
      }
    }
    for (const name of names) {
      const total = totals[name];
      values[name][round] = total.ops / total.seconds;
      values[name].steal[round] = total.stealKnown ? total.steal : undefined;
    }
  }
  return values;
}

function row(bench, engine, values, blockSize) {
  const iops = median(values);
  const steals = (values.steal ?? []).filter((v) => v !== undefined);
  return { bench, engine, iops, mbps: (iops * blockSize) / 1e6, values: [...values], steal: steals.length > 0 ? median(steals) : undefined };
}

/** Adds ratio fields to `subject` against `baseline`: the median of per-round ratios. */
function compare(subject, baseline, target) {
  subject.roundRatios = subject.values.map((v, i) => v / baseline.values[i]);
  subject.ratio = median(subject.roundRatios);
  subject.baseline = baseline;
  subject.target = target;
}

/**
 * Returns rows: { bench, engine, iops, mbps, values, baseline?, ratio?, roundRatios?, target?, command? }.
 * `cfg`: { file, fileSize, seconds, runs, fio (bool), log }.
 */
export async function throughputSuite(cfg) {
  const rows = [];
  const threads = defaultThreadCount();
  const log = (r) => {
    const ratios = r.roundRatios ? `; per-round ratios ${r.roundRatios.map((x) => x.toFixed(2)).join(', ')}` : '';
    const steal = r.steal === undefined ? '' : `; host steal ${percent(r.steal)}`;
    cfg.log(`  ${r.bench} / ${r.engine}: ${Math.round(r.iops)} IOPS (${r.values.map(Math.round).join(', ')})${ratios}${steal}`);
  };

  // One of our engines against one fio job, round by round.
  const vsFio = async (bench, engineName, engineLabel, load, job, target) => {
    const ours = engineContestant(cfg, engineName, load);
    if (!cfg.fio) {
      const values = await rounds(cfg, { ours });
      const r = row(bench, engineLabel, values.ours, load.blockSize);
      rows.push(r);
      log(r);
      return;
    }
    const fio = fioContestant(cfg, job);
    const values = await rounds(cfg, { ours, fio });
    const oursRow = row(bench, engineLabel, values.ours, load.blockSize);
    const fioRow = {
      ...row(bench, `fio ${job.ioengine}${job.numjobs ? ` numjobs=${job.numjobs}` : ` iodepth=${job.iodepth}`}`, values.fio, load.blockSize),
      command: fio.command,
    };
    compare(oursRow, fioRow, target);
    rows.push(oursRow, fioRow);
    log(oursRow);
    log(fioRow);
  };

  // Direct reads never touch the cache, but dirty or cached pages make NOWAIT say EAGAIN.
  dropCache(cfg.file);

  await vsFio(
    '4 KiB random read, O_DIRECT, 32 in flight',
    'iosubmit',
    'iosubmit',
    { flags: DIRECT_READ, depth: 32, blockSize: 4096 },
    { rw: 'randread', bs: '4k', direct: 1, ioengine: 'libaio', iodepth: 32 },
    0.9,
  );

  await vsFio(
    `4 KiB random read, O_DIRECT, ${threads} threads`,
    'threadpool',
    `threadpool (${threads} threads, 32 in flight)`,
    { flags: DIRECT_READ, depth: 32, blockSize: 4096, options: { threads } },
    { rw: 'randread', bs: '4k', direct: 1, ioengine: 'psync', numjobs: threads },
    0.9,
  );

  // Same block size on both sides, so the IOPS ratio is the MB/s ratio.
  await vsFio(
    '128 KiB sequential read, O_DIRECT, 16 in flight',
    'iosubmit',
    'iosubmit',
    { flags: DIRECT_READ, depth: 16, blockSize: 128 * 1024, pattern: 'seq' },
    { rw: 'read', bs: '128k', direct: 1, ioengine: 'libaio', iodepth: 16 },
    0.95,
  );

  const bench = '4 KiB random read, buffered, warm cache, 32 in flight';
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
    rows.push(r);
    log(r);
  }
  return rows;
}
