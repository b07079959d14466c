import { AgentErrorCode, agentError } from '../errors.js';

/**
 * Default deny: a command runs only if it is named in `--allow-exec`. Bare names
 * (`uname`) match bare names and are looked up in PATH by the kernel's execvp; absolute
 * paths (`/usr/bin/uname`) match only that exact path. A client can never widen a bare
 * name into a path (`./uname`, `/tmp/uname`), because anything containing '/' must
 * match an allowed absolute path exactly.
 */
export class ExecPolicy {
  private readonly allowed: ReadonlySet<string>;

  constructor(allowed: Iterable<string>) {
    this.allowed = new Set(allowed);
  }

  get allowList(): readonly string[] {
    return [...this.allowed];
  }

  check(command: unknown): string {
    if (typeof command !== 'string' || command.length === 0 || command.includes('\0')) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `exec needs a command name, got ${typeof command === 'string' ? `'${command}'` : typeof command}`);
    }
    if (!this.allowed.has(command)) {
      const hint = this.allowed.size === 0 ? 'exec is disabled (no --allow-exec)' : `allowed: ${[...this.allowed].join(', ')}`;
      throw agentError(AgentErrorCode.EXEC_DENIED, `exec of '${command}' refused by policy (${hint})`);
    }
    return command;
  }
}

/** Parses `--allow-exec a,b,c` (repeatable); rejects empty names and relative paths with '/'. */
export function parseAllowExec(values: readonly string[]): string[] {
  const names: string[] = [];
  for (const value of values) {
    for (const raw of value.split(',')) {
      const name = raw.trim();
      if (name === '') continue;
      if (name.includes('/') && !name.startsWith('/')) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `--allow-exec entry '${name}' must be a bare name or an absolute path`);
      }
      names.push(name);
    }
  }
  return names;
}
