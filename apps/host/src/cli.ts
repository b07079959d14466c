#!/usr/bin/env node
import { runDetachedCli } from './commands/detached.js';
import { runCli } from './run.js';
import { runShellCli } from './commands/shell.js';

const argv = process.argv.slice(2);
// ps, wait, kill, attach and exec --detach parse their own arguments (commands/detached.ts).
// shell and exec -t (terminal sessions) go to commands/shell.ts.
(runDetachedCli(argv) ?? runShellCli(argv) ?? runCli(argv)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`vmlink: internal error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
