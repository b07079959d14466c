import path from 'node:path';
import type { AgentClient, StatResult } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { type CliOutput, printJson } from '../output.js';
import { formatBytes } from '../progress.js';

/** `stat`: one line per field, or the agent's JSON. */
export function formatStat(stat: StatResult): string {
  const rows: [string, string][] = [
    ['path', stat.path],
    ['type', stat.type],
    ['size', `${formatBytes(stat.size)} (${stat.size} bytes)`],
    ['mode', `0${stat.mode.toString(8).padStart(3, '0')}`],
    ['mtime', new Date(stat.mtimeMs).toISOString()],
  ];
  if (stat.uid !== undefined) rows.push(['owner', `${stat.uid}:${stat.gid ?? '?'}`]);
  if (stat.nlink !== undefined) rows.push(['links', String(stat.nlink)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

export async function statCommand(client: AgentClient, remotePath: string, common: CommonOptions, out: CliOutput): Promise<number> {
  const stat = await client.stat(remotePath);
  if (common.json) printJson(out, stat);
  else out.stdout.write(`${formatStat(stat)}\n`);
  return 0;
}

export async function mkdirCommand(client: AgentClient, remotePath: string, parents: boolean, mode: number | undefined, common: CommonOptions, out: CliOutput): Promise<number> {
  const result = await client.mkdir(remotePath, { parents, ...(mode === undefined ? {} : { mode }) });
  if (common.json) printJson(out, result);
  else if (result.created) out.stdout.write(`created ${result.path}\n`);
  else out.stdout.write(`${result.path} exists\n`);
  return 0;
}

export async function rmCommand(client: AgentClient, remotePath: string, recursive: boolean, common: CommonOptions, out: CliOutput): Promise<number> {
  const result = await client.rm(remotePath, { recursive });
  if (common.json) printJson(out, result);
  else out.stdout.write(`removed ${result.path}${result.removed > 1 ? ` (${result.removed} entries)` : ''}\n`);
  return 0;
}

/** `mv FROM TO`: like mv(1), a TO that is a directory receives FROM under its own name. */
export async function mvCommand(client: AgentClient, from: string, to: string, common: CommonOptions, out: CliOutput): Promise<number> {
  let target = to;
  const existing = await client.stat(to).catch(() => undefined);
  if (existing?.type === 'directory') target = path.posix.join(to, path.posix.basename(from));
  const result = await client.mv(from, target);
  if (common.json) printJson(out, result);
  else out.stdout.write(`${result.from} -> ${result.to}\n`);
  return 0;
}

export async function chmodCommand(client: AgentClient, mode: number, remotePath: string, common: CommonOptions, out: CliOutput): Promise<number> {
  const result = await client.chmod(remotePath, mode);
  if (common.json) printJson(out, result);
  else out.stdout.write(`${result.path}: mode 0${result.mode.toString(8).padStart(3, '0')}\n`);
  return 0;
}
