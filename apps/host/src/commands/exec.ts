import type { AgentClient, ExecOptions, ExecSignal } from '../agent-client.js';
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
  io: { stdin?: NodeJS.ReadableStream & { destroy?: () => void }; signals?: boolean; request?: ExecOptions['request'] } = {},
): Promise<number> {
  const collected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  // Ctrl-C / SIGTERM go to the remote process group (as a terminal would send them); a
  // second one while the first is pending kills it.
  let control: { signal(name: ExecSignal): Promise<void> } | undefined;
  let interrupts = 0;
  const forward = (name: ExecSignal) => (): void => {
    interrupts += 1;
    void control?.signal(interrupts > 1 ? 'SIGKILL' : name);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  if (io.signals) {
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  }
  let result;
  try {
    result = await client.exec(
      command,
      args,
      async (stream, chunk) => {
        if (common.json) collected[stream].push(Buffer.from(chunk));
        else await writeWithBackpressure(stream === 'stdout' ? out.stdout : out.stderr, chunk);
      },
      {
        ...(io.stdin ? { stdin: io.stdin as AsyncIterable<Uint8Array> } : {}),
        ...(io.request ? { request: io.request } : {}),
        onStarted: (c) => (control = c),
      },
    );
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    // The command is over: stop reading our stdin (a terminal would keep the CLI alive).
    io.stdin?.destroy?.();
  }
  const status = result.exitCode ?? 128 + (signalNumber(result.signal) ?? 0);
  if (common.json) {
    printJson(out, {
      exitCode: result.exitCode,
      signal: result.signal,
      stdout: Buffer.concat(collected.stdout).toString('utf8'),
      stderr: Buffer.concat(collected.stderr).toString('utf8'),
      ...(result.truncated ? { truncated: result.truncated } : {}),
    });
  } else {
    // Cut output must not pass for the whole of it: say so, as the terminal session does.
    for (const stream of ['stdout', 'stderr'] as const) {
      const cap = result.truncated?.[stream];
      if (cap !== undefined) out.stderr.write(`vmlink exec: ${stream} cut at ${cap} bytes (--max-output or the agent's --exec-max-output); the command's exit status is its own\n`);
    }
  }
  return status;
}

function signalNumber(name: string | null): number | undefined {
  if (name === null) return undefined;
  return osConstants.signals[name as keyof typeof osConstants.signals];
}
