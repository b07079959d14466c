#!/usr/bin/env node
import { EXIT_VM_FAILED, doctorCommand, infoCommand, runCommand } from './cli/commands.js';
import { USAGE } from './cli/args.js';

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return runCommand(rest);
    case 'info':
      return infoCommand(rest);
    case 'doctor':
      return doctorCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? EXIT_VM_FAILED : 0;
    default:
      process.stderr.write(`vmlink-testvm: unknown command '${command}'\n\n${USAGE}`);
      return EXIT_VM_FAILED;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const { code, message, name } = err as { code?: string; message?: string; name?: string };
    if (name === 'AbortError') {
      process.stderr.write('vmlink-testvm: interrupted; the guest was stopped\n');
      process.exitCode = 130;
      return;
    }
    process.stderr.write(`vmlink-testvm: ${code === undefined ? '' : `[${code}] `}${message ?? String(err)}\n`);
    process.exitCode = EXIT_VM_FAILED;
  },
);
