import { type TerminalIo, runTerminalSession } from '../terminal/pty-session.js';
import { routeTerminal } from '../terminal/route.js';
import { runCli } from '../run.js';

const PROCESS_IO: TerminalIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

/**
 * `vmlink shell URI` and `vmlink exec -it URI -- CMD`: a terminal session (and `exec -i`
 * without -t: plain exec with -i dropped). Undefined when `argv` is none of these: the
 * usual CLI takes it.
 */
export function runShellCli(argv: readonly string[], io: TerminalIo = PROCESS_IO): Promise<number> | undefined {
  const route = routeTerminal(argv);
  switch (route.kind) {
    case 'cli':
      return route.argv.length === argv.length ? undefined : runCli(route.argv);
    case 'help':
      io.stdout.write(`${route.text}\n`);
      return Promise.resolve(0);
    case 'usage':
      io.stderr.write(`vmlink: ${route.message}\nTry 'vmlink shell --help'.\n`);
      return Promise.resolve(2);
    case 'terminal':
      return runTerminalSession(route.spec, io);
  }
}
