import { createHash, randomBytes } from 'node:crypto';
import type { AgentClient } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { type CliOutput, printJson } from '../output.js';

/** The agent-side file bulk runs use; overwritten by every run. */
export const BENCH_REMOTE_PATH = '/.vmlink-bench.bin';

export interface BenchReport {
  uri: string;
  ping: { rounds: number; perSecond: number; p50Ms: number; p99Ms: number };
  upload: { bytes: number; seconds: number; mibPerSecond: number };
  download: { bytes: number; seconds: number; mibPerSecond: number };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

export async function benchCommand(client: AgentClient, rounds: number, sizeMiB: number, common: CommonOptions, out: CliOutput): Promise<number> {
  const rtts: number[] = [];
  const pingStart = performance.now();
  for (let i = 0; i < rounds; i += 1) {
    const t = performance.now();
    await client.ping();
    rtts.push(performance.now() - t);
  }
  const pingSeconds = (performance.now() - pingStart) / 1000;
  rtts.sort((a, b) => a - b);

  // One random MiB repeated: generating 32 MiB of fresh randomness would measure the CPU.
  const block = randomBytes(1024 * 1024);
  const bytes = sizeMiB * block.length;
  const hash = createHash('sha256');
  for (let i = 0; i < sizeMiB; i += 1) hash.update(block);
  const sha256 = hash.digest('hex');
  async function* blocks(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < sizeMiB; i += 1) yield block;
  }
  let t = performance.now();
  await client.write(BENCH_REMOTE_PATH, blocks(), bytes, sha256);
  const upSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const read = await client.read(BENCH_REMOTE_PATH, async () => {});
  const downSeconds = (performance.now() - t) / 1000;
  if (read.sha256 !== sha256) throw new Error(`bench: read back SHA-256 ${read.sha256}, wrote ${sha256}`);

  const mib = bytes / (1024 * 1024);
  const report: BenchReport = {
    uri: client.uri,
    ping: { rounds, perSecond: Math.round(rounds / pingSeconds), p50Ms: round(percentile(rtts, 50)), p99Ms: round(percentile(rtts, 99)) },
    upload: { bytes, seconds: round(upSeconds), mibPerSecond: round(mib / upSeconds) },
    download: { bytes, seconds: round(downSeconds), mibPerSecond: round(mib / downSeconds) },
  };
  if (common.json) {
    printJson(out, report);
  } else {
    out.stdout.write(
      [
        `bench ${client.uri}`,
        '| measure | value |',
        '| --- | --- |',
        `| ping round trips/s (${rounds}) | ${report.ping.perSecond} |`,
        `| ping p50 / p99 ms | ${report.ping.p50Ms} / ${report.ping.p99Ms} |`,
        `| upload ${mib} MiB | ${report.upload.mibPerSecond} MiB/s |`,
        `| download ${mib} MiB | ${report.download.mibPerSecond} MiB/s |`,
        '',
      ].join('\n'),
    );
  }
  return 0;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
