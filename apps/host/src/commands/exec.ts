import type { AgentClient } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { type CliOutput, printJson, writeWithBackpressure } from '../output.js';
import { constants as osConstants } from 'node:os';

/** Runs the remote command and returns ITS exit status (128+N for signal N). */
export async function execCommand(
  client: AgentClient,
  command: string,
  args: readonly string[],
  common: CommonOptions,
  out: CliOutput,
): Promise<number> {
  const collected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const result = await client.exec(command, args, async (stream, chunk) => {
    if (common.json) collected[stream].push(Buffer.from(chunk));
    else await writeWithBackpressure(stream === 'stdout' ? out.stdout : out.stderr, chunk);
  });
  const status = result.exitCode ?? 128 + (signalNumber(result.signal) ?? 0);
  if (common.json) {
    printJson(out, {
      exitCode: result.exitCode,
      signal: result.signal,
      stdout: Buffer.concat(collected.stdout).toString('utf8'),
      stderr: Buffer.concat(collected.stderr).toString('utf8'),
    });
  }
  return status;
}

function signalNumber(name: string | null): number | undefined {
  if (name === null) return undefined;
  return osConstants.signals[name as keyof typeof osConstants.signals];
}
