#!/usr/bin/env node
import { EXIT_VM_FAILED, doctorCommand, infoCommand, runCommand } from './cli/commands.js';
import { COMMANDS, USAGE, commandHelp, usageError, wantsHelp, type CommandName } from './cli/args.js';
import { didYouMean } from './cli/suggest.js';
import { packageVersion } from './cli/version.js';

const HANDLERS: Record<CommandName, (argv: readonly string[]) => Promise<number>> = {
  run: runCommand,
  info: infoCommand,
  doctor: doctorCommand,
};

function isCommand(word: string): word is CommandName {
  return (COMMANDS as readonly string[]).includes(word);
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) throw usageError('no command given');
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (command === '-h' || command === '--help' || command === 'help') {
    const topic = rest[0];
    if (topic === undefined) process.stdout.write(USAGE);
    else if (isCommand(topic)) process.stdout.write(commandHelp(topic));
    else throw usageError(`no help for '${topic}'${didYouMean(topic, COMMANDS)}`);
    return 0;
  }
  if (!isCommand(command)) {
    const known = command.startsWith('-') ? ['--help', '--version'] : [...COMMANDS, 'help'];
    throw usageError(`unknown ${command.startsWith('-') ? 'option' : 'command'} '${command}'${didYouMean(command, known)}`);
  }
  if (wantsHelp(rest)) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  return HANDLERS[command](rest);
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
