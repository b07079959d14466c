import type { AgentClient } from './agent-client.js';
import { describeAgentError } from '@vmlink/agent-protocol';
import { type Command, HELP, UsageError, parseHostArgs } from './args.js';
import { benchCommand } from './commands/bench.js';
import { cpCommand } from './commands/cp.js';
import { execCommand } from './commands/exec.js';
import { forwardCommand, waitPortCommand } from './commands/forward.js';
import { chmodCommand, mkdirCommand, mvCommand, rmCommand, statCommand } from './commands/manage.js';
import { infoCommand, lsCommand, pingCommand } from './commands/simple.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { type CliOutput, processOutput } from './output.js';
import { connectAgent } from './rpc-client.js';
import { CLI_VERSION } from './version.js';

/** A human sentence for the cause behind each family of codes. */
function hintFor(code: string | undefined): string {
  switch (exitCodeFor(code)) {
    case ExitCode.UNREACHABLE:
      return ' (is the agent running and listening on that URI?)';
    case ExitCode.TIMEOUT:
      return ' (the agent did not answer in time)';
    case ExitCode.POLICY:
      return ' (refused by the agent policy)';
    case ExitCode.CONNECTION_LOST:
      return ' (the connection to the agent broke)';
    default:
      return '';
  }
}

function uriOf(command: Command): string | undefined {
  if ('uri' in command) return command.uri;
  if (command.name === 'cp') return command.plan.uri;
  return undefined;
}

/** Runs one CLI invocation and returns its exit code; never throws for expected failures. */
export async function runCli(argv: readonly string[], out: CliOutput = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let command: Command;
  try {
    command = parseHostArgs(argv, env);
  } catch (error) {
    const command = error instanceof UsageError ? error.command : undefined;
    const more = command === undefined ? '' : ` or 'vmlink ${command} --help'`;
    out.stderr.write(`vmlink: ${(error as Error).message}\nTry 'vmlink --help'${more}.\n`);
    return ExitCode.USAGE;
  }
  if (command.name === 'help') {
    out.stdout.write(`${HELP[command.topic ?? 'main']}\n`);
    return ExitCode.OK;
  }
  if (command.name === 'version') {
    out.stdout.write(`${CLI_VERSION}\n`);
    return ExitCode.OK;
  }
  const uri = uriOf(command) ?? '';
  let client: AgentClient | undefined;
  const connectOptions = { timeoutMs: command.common.timeoutMs, wait: command.common.wait, transportModules: command.common.transports };
  const started = performance.now();
  try {
    // wait-port waits for the agent too (a guest still booting), within the same --timeout.
    client = await connectAgent(uri, command.name === 'wait-port' ? { ...connectOptions, wait: true } : connectOptions);
    switch (command.name) {
      case 'ping':
        return await pingCommand(client, command.count, command.common, out);
      case 'info':
        return await infoCommand(client, command.common, out);
      case 'ls':
        return await lsCommand(client, command.path, command.common, out);
      case 'cp':
        return await cpCommand(client, command, out);
      case 'stat':
        return await statCommand(client, command.path, command.common, out);
      case 'mkdir':
        return await mkdirCommand(client, command.path, command.parents, command.mode, command.common, out);
      case 'rm':
        return await rmCommand(client, command.path, command.recursive, command.common, out);
      case 'mv':
        return await mvCommand(client, command.from, command.to, command.common, out);
      case 'chmod':
        return await chmodCommand(client, command.mode, command.path, command.common, out);
      case 'forward': {
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          return await forwardCommand(() => connectAgent(uri, connectOptions), client, command.spec, command.common, out, stop.signal);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }
      case 'wait-port':
        return await waitPortCommand(client, command.host, command.port, started + command.common.timeoutMs, command.common, out);
      case 'exec':
        return await execCommand(client, command.command, command.args, command.common, out, {
          ...(command.stdin ? { stdin: process.stdin } : {}),
          ...(command.request ? { request: command.request } : {}),
          signals: true,
        });
      case 'bench':
        return await benchCommand(client, command.rounds, command.sizeMiB, command.common, out);
      default:
        return ExitCode.USAGE;
    }
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const codeText = typeof code === 'string' ? code : undefined;
    // The refusal in words first (what it means), then the agent's message (which value).
    const words = describeAgentError(codeText);
    const said = words ? `${words}: ` : '';
    out.stderr.write(`vmlink ${command.name} ${uri}: ${said}${(error as Error).message}${hintFor(codeText)} [${codeText ?? 'ERROR'}]\n`);
    if (error instanceof UsageError) out.stderr.write(`Try 'vmlink --help' or 'vmlink ${command.name} --help'.\n`);
    // Like a shell: an allowed command that is not installed or not executable.
    if (command.name === 'exec' && codeText === 'ENOENT') return 127;
    if (command.name === 'exec' && codeText === 'EACCES') return 126;
    return exitCodeFor(codeText);
  } finally {
    await client?.close().catch(() => undefined);
  }
}
