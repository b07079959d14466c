// fio, run in the same script run as our engines so that both see the same machine state.
import { execFileSync, spawnSync } from 'node:child_process';

export function fioAvailable() {
  return spawnSync('fio', ['--version'], { encoding: 'utf8' }).status === 0;
}

/**
 * Runs one fio job and returns { iops, bytesPerSec, clatP99Us }. `job` holds fio options
 * (rw, bs, ioengine, iodepth, numjobs, direct...).
 */
export function runFio(path, sizeBytes, seconds, job) {
  const args = [
    '--name=vmlink-bench',
    `--filename=${path}`,
    `--size=${sizeBytes}`,
    '--time_based',
    `--runtime=${Math.round(seconds * 1000)}ms`,
    '--ramp_time=1',
    '--group_reporting',
    '--output-format=json',
    '--invalidate=0',
    ...Object.entries(job).map(([key, value]) => `--${key}=${value}`),
  ];
  const out = execFileSync('fio', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const report = JSON.parse(out.slice(out.indexOf('{')));
  const read = report.jobs[0].read;
  const p99ns = read.clat_ns?.percentile?.['99.000000'] ?? read.lat_ns?.percentile?.['99.000000'] ?? 0;
  return { iops: read.iops, bytesPerSec: read.bw_bytes, clatP99Us: p99ns / 1000, command: `fio ${args.join(' ')}` };
}
