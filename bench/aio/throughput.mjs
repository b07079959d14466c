// Throughput benchmarks: our engines against fio (and Node's FileHandle) on the same file.
import { defaultThreadCount } from '@vmlink/aio-threadpool';
import { buffers, DIRECT_READ, openEngine } from './lib/engines.mjs';
import { dropCache, warmCache } from './lib/files.mjs';
import { runFio } from './lib/fio.mjs';
import { closedLoop, randomOffset } from './lib/load.mjs';
import { repeat } from './lib/report.mjs';

/** Runs one engine on a closed-loop load `runs` times; returns the median IOPS and MB/s. */
async function engineRuns(cfg, engine, { flags, depth, blockSize, pattern, options }) {
  const io = await openEngine(engine, cfg.file, flags, options);
  try {
    const bufs = buffers(depth, blockSize);
    let cursor = 0;
    const nextOffset = pattern === 'seq'
      ? () => {
          const offset = cursor;
          cursor = (cursor + blockSize) % cfg.fileSize;
          return offset;
        }
      : () => randomOffset(cfg.fileSize, blockSize);
    const result = await repeat(cfg.runs, () => closedLoop({ depth, seconds: cfg.seconds, op: (w) => io.read(bufs[w], nextOffset()) }), (r) => r.opsPerSec);
    return { iops: result.median, mbps: (result.median * blockSize) / 1e6, values: result.values };
  } finally {
    await io.close();
  }
}

async function fioRuns(cfg, job, blockSize) {
  const result = await repeat(cfg.runs, () => runFio(cfg.file, cfg.fileSize, cfg.seconds, job), (r) => r.iops);
  return { iops: result.median, mbps: (result.median * blockSize) / 1e6, values: result.values, command: result.results[0].command };
}

/**
 * Returns rows: { bench, engine, iops, mbps, values, baseline?, ratio?, target? }.
 * `cfg`: { file, fileSize, seconds, runs, fio (bool), log }.
 */
export async function throughputSuite(cfg) {
  const rows = [];
  const threads = defaultThreadCount();
  const add = (row) => {
    rows.push(row);
    cfg.log(`  ${row.bench} / ${row.engine}: ${Math.round(row.iops)} IOPS (${row.values.map(Math.round).join(', ')})`);
  };
  const vsFio = async (bench, engineRow, job, blockSize, target, metric) => {
    add(engineRow);
    if (!cfg.fio) return;
    const fio = await fioRuns(cfg, job, blockSize);
    add({ bench, engine: `fio ${job.ioengine}${job.numjobs ? ` numjobs=${job.numjobs}` : ` iodepth=${job.iodepth}`}`, ...fio });
    engineRow.baseline = fio;
    engineRow.ratio = engineRow[metric] / fio[metric];
    engineRow.target = target;
  };

  // Direct reads never touch the cache, but dirty or cached pages make NOWAIT say EAGAIN.
  dropCache(cfg.file);

  let bench = '4 KiB random read, O_DIRECT, 32 in flight';
  await vsFio(
    bench,
    { bench, engine: 'iosubmit', ...(await engineRuns(cfg, 'iosubmit', { flags: DIRECT_READ, depth: 32, blockSize: 4096 })) },
    { rw: 'randread', bs: '4k', direct: 1, ioengine: 'libaio', iodepth: 32 },
    4096,
    0.9,
    'iops',
  );

  bench = `4 KiB random read, O_DIRECT, ${threads} threads`;
  await vsFio(
    bench,
    { bench, engine: `threadpool (${threads} threads, 32 in flight)`, ...(await engineRuns(cfg, 'threadpool', { flags: DIRECT_READ, depth: 32, blockSize: 4096, options: { threads } })) },
    { rw: 'randread', bs: '4k', direct: 1, ioengine: 'psync', numjobs: threads },
    4096,
    0.9,
    'iops',
  );

  bench = '128 KiB sequential read, O_DIRECT, 16 in flight';
  await vsFio(
    bench,
    { bench, engine: 'iosubmit', ...(await engineRuns(cfg, 'iosubmit', { flags: DIRECT_READ, depth: 16, blockSize: 128 * 1024, pattern: 'seq' })) },
    { rw: 'read', bs: '128k', direct: 1, ioengine: 'libaio', iodepth: 16 },
    128 * 1024,
    0.95,
    'mbps',
  );

  bench = '4 KiB random read, buffered, warm cache, 32 in flight';
  warmCache(cfg.file);
  const node = { bench, engine: 'node FileHandle', ...(await engineRuns(cfg, 'node FileHandle', { flags: 'r', depth: 32, blockSize: 4096 })) };
  add(node);
  for (const engine of ['iosubmit', 'threadpool', 'fs']) {
    const row = { bench, engine, ...(await engineRuns(cfg, engine, { flags: 'r', depth: 32, blockSize: 4096 })) };
    row.baseline = node;
    row.ratio = row.iops / node.iops;
    // The fs backend is the reference (libuv's pool, one crossing per request): no target.
    if (engine !== 'fs') row.target = 4;
    add(row);
  }
  return rows;
}
