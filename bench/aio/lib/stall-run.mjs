// One stall-suite run of one engine, in a process of its own, as the throughput slices run
// (lib/slice.mjs): run inside the long-lived bench process, an engine inherited the heap
// (garbage a later collection pauses for), the JIT state and the threads of every run
// before it, and a loop-delay maximum is exactly what such a pause shows.
//
// `node bench/aio/lib/stall-run.mjs '<json>'` with { engine, path, flags, depth, blockSize,
// seconds, offsets, write, options? } (the engine's options, as lib/slice.mjs takes them)
// prints one JSON line { opsPerSec, steal, loopDelayMs,
// submitTimeUs, guardRouted, nowaitFallbacks }. `offsets`: { kind: 'append', cap } (0, 1,
// 2 ... blocks, stopping before `cap` bytes) or { kind: 'random', size, align, skew }
// (an `align`-aligned offset below `size`, plus `skew`).
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cpuSnapshot, stealShare } from './cpu.mjs';
import { buffers, openEngine } from './engines.mjs';
import { closedLoop, randomOffset } from './load.mjs';

/** The histogram's timer fires every RESOLUTION_MS: delay is what comes on top of that. */
export const RESOLUTION_MS = 1;

/** The next offset to use, or null when the load must stop (an append cap reached). */
export function offsetSource(offsets, blockSize) {
  if (offsets.kind === 'append') {
    let next = 0;
    // Capped: appends must never fill the disk, whatever the clock says.
    return () => (next * blockSize >= offsets.cap ? null : next++ * blockSize);
  }
  return () => randomOffset(offsets.size, offsets.align) + (offsets.skew ?? 0);
}

/** Seconds of the same load on a scratch file before the watched run (see warmUp). */
export const WARMUP_SECONDS = 0.5;
const SCRATCH_SIZE = 8 << 20;

/**
 * The same engine and request kind, on a scratch file of its own, for WARMUP_SECONDS, then
 * closed: a fresh process compiles and tiers up the request path, grows its heap and
 * starts its threads in its first fraction of a second, and the watched run must show the
 * engine's I/O, not that (in the long-lived bench process every engine but the first had it
 * done). A scratch file, so that the workload's own file stays as defined (cold, empty).
 */
async function warmUp({ engine, path, flags, depth, blockSize, write, options }) {
  const scratch = `${path}.warmup`;
  writeFileSync(scratch, randomBytes(SCRATCH_SIZE));
  try {
    const io = await openEngine(engine, scratch, flags, options);
    try {
      const bufs = buffers(depth, blockSize);
      const at = offsetSource({ kind: 'random', size: SCRATCH_SIZE - 4096, align: 4096, skew: blockSize % 4096 === 0 ? 0 : 1024 }, blockSize);
      await closedLoop({ depth, seconds: WARMUP_SECONDS, warmupSeconds: 0, op: (w) => (write ? io.write(bufs[w], at()) : io.read(bufs[w], at())) });
    } finally {
      await io.close();
    }
  } finally {
    rmSync(scratch, { force: true });
  }
}

/** The run in this process (the child's body; exported for tests). */
export async function runStall(job) {
  const { engine, path, flags, depth, blockSize, seconds, offsets, write, options } = job;
  await warmUp(job);
  const io = await openEngine(engine, path, flags, options);
  const bufs = buffers(depth, blockSize);
  const nextOffset = offsetSource(offsets, blockSize);
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  const op = (w) => {
    const offset = nextOffset();
    if (offset === null) return null;
    return write ? io.write(bufs[w], offset) : io.read(bufs[w], offset);
  };
  try {
    // Watched from the first request on the workload's file, as each workload is defined.
    delay.enable();
    const cpuBefore = cpuSnapshot();
    const load = await closedLoop({ depth, seconds, warmupSeconds: 0, op });
    delay.disable();
    const steal = stealShare(cpuBefore, cpuSnapshot());
    const stats = io.stats();
    const excess = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
    return {
      opsPerSec: load.opsPerSec,
      steal,
      loopDelayMs: { p50: excess(delay.percentile(50)), p99: excess(delay.percentile(99)), max: excess(delay.max) },
      submitTimeUs: stats === undefined ? undefined : { p99: stats.submitTimeUs.p99, max: stats.submitTimeUs.max },
      guardRouted: stats?.guardRouted ?? 0,
      nowaitFallbacks: stats?.nowaitFallbacks ?? 0,
    };
  } finally {
    await io.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runStall(JSON.parse(process.argv[2]));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
