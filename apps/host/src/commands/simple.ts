import type { AgentClient, AgentInfo, ListResult } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { type CliOutput, printJson } from '../output.js';
import { formatBytes, formatDuration } from '../progress.js';

export async function pingCommand(client: AgentClient, count: number, common: CommonOptions, out: CliOutput): Promise<number> {
  const rtts: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    await client.ping();
    const ms = performance.now() - start;
    rtts.push(ms);
    if (!common.json) out.stdout.write(`pong from ${client.uri}: seq=${i + 1} time=${ms.toFixed(2)} ms\n`);
  }
  if (common.json) printJson(out, { uri: client.uri, count, rttMs: rtts.map((v) => Math.round(v * 1000) / 1000) });
  return 0;
}

export function formatInfo(info: AgentInfo): string {
  const rows: [string, string][] = [
    ['hostname', info.hostname],
    ['kernel', `${info.kernel.sysname} ${info.kernel.release} ${info.kernel.machine}`],
    ['uptime', formatDuration(info.uptimeSeconds)],
    ['load', info.load.map((l) => l.toFixed(2)).join(' ')],
    ['memory', `${formatBytes(info.memory.freeBytes)} free of ${formatBytes(info.memory.totalBytes)}`],
    ['cpus', `${info.cpus.count} x ${info.cpus.model}`],
    ['vsock cid', info.vsockCid === null ? 'none (no AF_VSOCK)' : String(info.vsockCid)],
    ['agent', `vmlink-guest ${info.agent.version} (node ${info.agent.node}, pid ${info.agent.pid}, aio ${info.agent.aio})`],
    ['root', info.agent.root ?? 'none (file methods disabled)'],
    ['allow-exec', info.agent.allowExec.length > 0 ? info.agent.allowExec.join(', ') : 'none'],
    ['transports', info.transports.join('  ')],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

export async function infoCommand(client: AgentClient, common: CommonOptions, out: CliOutput): Promise<number> {
  const info = await client.info();
  if (common.json) printJson(out, info);
  else out.stdout.write(`${formatInfo(info)}\n`);
  return 0;
}

export function formatListing(listing: ListResult): string {
  const mark = { directory: '/', symlink: '@', file: '', other: '?' } as const;
  const lines = listing.entries.map((e) => {
    const when = new Date(e.mtimeMs).toISOString().replace('T', ' ').slice(0, 16);
    const size = e.type === 'directory' ? '-' : formatBytes(e.size);
    return `${size.padStart(10)}  ${when}  ${e.name}${mark[e.type]}`;
  });
  if (listing.truncated) lines.push(`(truncated after ${listing.entries.length} entries)`);
  return lines.join('\n');
}

export async function lsCommand(client: AgentClient, path: string, common: CommonOptions, out: CliOutput): Promise<number> {
  const listing = await client.list(path);
  if (common.json) printJson(out, listing);
  else if (listing.entries.length > 0 || listing.truncated) out.stdout.write(`${formatListing(listing)}\n`);
  return 0;
}
