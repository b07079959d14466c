import { parseArgs } from 'node:util';
import { parseDuration } from '../commands/forward.js';
import { DEFAULT_TIMEOUT_MS } from '../options-spec.js';
import type { TerminalSpec } from './pty-session.js';

/**
 * Which command lines are terminal sessions: `vmlink shell URI [-- CMD ARGS]` and
 * `vmlink exec -t URI -- CMD ARGS` (`-it` like docker; `-i` alone is plain exec, whose
 * stdin is streamed anyway, so it is dropped). Everything else goes to the usual parser.
 */
export type Route = { kind: 'terminal'; spec: TerminalSpec } | { kind: 'help'; text: string } | { kind: 'usage'; message: string } | { kind: 'cli'; argv: string[] };

export const SHELL_HELP = `Usage: vmlink shell URI [options] [-- CMD [ARGS...]]
       vmlink exec -it URI [options] -- CMD [ARGS...]

Runs CMD (default: sh) on a terminal in the guest: our terminal is raw while it runs
(Ctrl-C, Ctrl-Z, Ctrl-D go to the remote terminal), the window size follows ours, and
the exit status is CMD's. CMD must be in the agent's --allow-exec. The guest's output
reaches our terminal unchanged, and our terminal's modes are restored however the
session ends. The agent's --exec-timeout does not apply: the session lasts until CMD
exits or this command ends (the agent then kills the remote session).

Options:
  -t, --tty          (exec) run on a terminal; needs a terminal on stdin
  -i, --interactive  (exec) accepted for docker habits: stdin is always streamed
  --env NAME=VALUE   set a variable the agent allows (--allow-env); NAME alone passes ours
  --cwd DIR          start in DIR (under the agent's --root)
  --timeout TIME     connect timeout: ms, or 30s, 2m (default ${DEFAULT_TIMEOUT_MS} ms)
  --uri URI          the agent URI, instead of the positional one
  --transport MODULE load a transport plugin, repeatable; also VMLINK_TRANSPORTS=a,b
  -h, --help         this help`;

const OPTIONS = {
  tty: { type: 'boolean', short: 't' },
  interactive: { type: 'boolean', short: 'i' },
  env: { type: 'string', multiple: true },
  cwd: { type: 'string' },
  timeout: { type: 'string' },
  uri: { type: 'string' },
  transport: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

export function routeTerminal(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Route {
  const verb = argv[0];
  if (verb !== 'shell' && verb !== 'exec') return { kind: 'cli', argv: [...argv] };
  const dashDash = argv.indexOf('--');
  const before = dashDash < 0 ? argv.slice(1) : argv.slice(1, dashDash);
  const after = dashDash < 0 ? [] : argv.slice(dashDash + 1);
  if (verb === 'exec') {
    const wantsTty = before.some((a) => a === '--tty' || /^-[a-zA-Z]*t[a-zA-Z]*$/.test(a));
    if (!wantsTty) {
      // -i alone: plain exec (stdin is streamed by default).
      const dropped = before.filter((a) => a !== '-i' && a !== '--interactive');
      return { kind: 'cli', argv: ['exec', ...dropped, ...(dashDash < 0 ? [] : ['--', ...after])] };
    }
  }
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: before, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (error) {
    return { kind: 'usage', message: `${verb}: ${(error as Error).message}` };
  }
  if (values.help) return { kind: 'help', text: SHELL_HELP };
  if (verb === 'shell' && (values.tty || values.interactive)) return { kind: 'usage', message: 'shell: -t/-i are implied' };
  const uri = values.uri ?? positionals.shift();
  if (uri === undefined) return { kind: 'usage', message: `${verb} needs a URI (e.g. unix:/run/vmlink.sock)` };
  if (positionals.length > 0) return { kind: 'usage', message: `${verb}: unexpected argument '${positionals[0]}'` };
  const [command, ...args] = after.length > 0 ? after : verb === 'shell' ? ['sh'] : [];
  if (command === undefined) return { kind: 'usage', message: `exec needs '-- CMD [ARGS...]'` };
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    const parsed = parseDuration(values.timeout);
    if (parsed === undefined) return { kind: 'usage', message: `${verb}: --timeout must be ms or 30s, 2m, got '${values.timeout}'` };
    timeoutMs = parsed;
  }
  const variables: Record<string, string> = {};
  for (const entry of values.env ?? []) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { kind: 'usage', message: `${verb}: --env '${entry}' is not NAME=VALUE` };
    const value = eq < 0 ? env[name] : entry.slice(eq + 1);
    if (value === undefined) return { kind: 'usage', message: `${verb}: --env ${name}: not set here (give NAME=VALUE)` };
    variables[name] = value;
  }
  const transports = [
    ...(env['VMLINK_TRANSPORTS'] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== ''),
    ...(values.transport ?? []),
  ];
  return { kind: 'terminal', spec: { verb, uri, command, args, env: variables, cwd: values.cwd, timeoutMs, transports } };
}
