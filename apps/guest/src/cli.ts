#!/usr/bin/env node
import { Agent } from './agent.js';
import { GUEST_USAGE, parseGuestArgs } from './options.js';
import { createLogger } from './request-log.js';
import { AGENT_VERSION } from './version.js';

/** Exit codes: 0 clean stop, 2 usage, 1 could not start. */
async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseGuestArgs(argv);
  } catch (error) {
    process.stderr.write(`vmlink-guest: ${(error as Error).message}\nTry 'vmlink-guest --help'.\n`);
    return 2;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(GUEST_USAGE);
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  const log = createLogger({ json: parsed.options.jsonLog, quiet: parsed.options.quiet });
  // Last line of defence: one request's bug must not take down every client's agent.
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled rejection (bug)', { cause: (reason as Error)?.stack ?? String(reason) });
  });
  routeProcessWarnings(log);
  // Signal handlers before start: a supervisor may send SIGTERM as soon as it reads
  // 'ready', which can happen before the line after Agent.start() runs.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.removeListener('SIGTERM', stop);
      process.removeListener('SIGINT', stop);
      resolve(signal);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  let agent: Agent;
  try {
    agent = await Agent.start(parsed.options, log);
  } catch (error) {
    const code = (error as { code?: string }).code;
    log.error('cannot start', { code: code ?? 'ERROR', cause: (error as Error).message });
    return 1;
  }
  const signal = await stopSignal;
  log.event('signal', { signal });
  await agent.shutdown().catch((error: unknown) => {
    log.error('shutdown failed', { cause: (error as Error).message });
  });
  return 0;
}

/**
 * Node prints its own warnings ("(node:PID) Warning: ...") as free text on stderr, which
 * would break a --json log's one-object-per-line promise. They go through the agent's log
 * instead, in its format, with their name and code, so that nothing is hidden either.
 */
function routeProcessWarnings(log: ReturnType<typeof createLogger>): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    log.error('node warning', { name: warning.name, ...(warning.code ? { code: warning.code } : {}), cause: warning.stack ?? warning.message });
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit explicitly: a plugin handle left open must not keep a stopped agent alive.
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`vmlink-guest: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
