import { SystemError } from '@vmlink/errors';
import { AgentErrorCode, agentError } from '../errors.js';
import { FIXED_EXEC_PATH, isInside, resolveBareCommand } from './exec-resolve.js';

/** An allowed command as exec runs it. */
export interface ResolvedCommand {
  /** The name the client asked for (and the allow-list holds). */
  readonly name: string;
  /** What is spawned: always absolute. */
  readonly path: string;
}

/**
 * Default deny: a command runs only if it is named in `--allow-exec`. Bare names
 * (`uname`) are resolved to absolute paths at start-up through FIXED_EXEC_PATH (never the
 * agent's own PATH, never the root); absolute paths (`/usr/bin/uname`) match only that
 * exact path. A client can never widen a bare name into a path (`./uname`,
 * `/tmp/uname`), because anything containing '/' must match an allowed absolute path
 * exactly.
 */
export class ExecPolicy {
  private readonly allowed: ReadonlySet<string>;
  /** Bare name -> absolute path, for the names found; absolute entries map to themselves. */
  private readonly resolved = new Map<string, string>();

  private constructor(
    allowed: Iterable<string>,
    private readonly root: string | undefined,
    private readonly searchPath: string,
  ) {
    this.allowed = new Set(allowed);
  }

  /**
   * Resolves every bare name once. Names not found stay allowed but fail with ENOENT
   * when called (looked up again then, in the same fixed directories: something
   * installed later is found). Absolute entries inside the root are refused: a client
   * could replace them with fs.write.
   */
  static async create(allowed: readonly string[], options: { root?: string | undefined; searchPath?: string } = {}): Promise<ExecPolicy> {
    const policy = new ExecPolicy(allowed, options.root, options.searchPath ?? FIXED_EXEC_PATH);
    for (const name of policy.allowed) {
      if (name.startsWith('/')) {
        if (options.root !== undefined && isInside(name, options.root)) {
          throw agentError(AgentErrorCode.INVALID_PARAMS, `--allow-exec ${name} lies inside --root ${options.root}: clients could replace it`);
        }
        policy.resolved.set(name, name);
        continue;
      }
      const found = await resolveBareCommand(name, { root: options.root, searchPath: policy.searchPath });
      if (found !== undefined) policy.resolved.set(name, found);
    }
    return policy;
  }

  /** The allow-list as given (bare names and absolute paths). */
  get allowList(): readonly string[] {
    return [...this.allowed];
  }

  /** Bare names that were not found at start-up. */
  get unresolved(): readonly string[] {
    return [...this.allowed].filter((name) => !this.resolved.has(name));
  }

  /** Allowed name -> absolute path, for what was found. */
  get paths(): ReadonlyMap<string, string> {
    return this.resolved;
  }

  /** Checks a client's command against the allow-list (no file system access). */
  check(command: unknown): string {
    if (typeof command !== 'string' || command.length === 0 || command.includes('\0')) {
      throw agentError(
        AgentErrorCode.INVALID_PARAMS,
        `exec needs a command name (a non-empty string without NUL bytes), got ${describeValue(command)}`,
      );
    }
    if (!this.allowed.has(command)) {
      const hint = this.allowed.size === 0 ? 'exec is disabled (no --allow-exec)' : `allowed: ${[...this.allowed].join(', ')}`;
      throw agentError(AgentErrorCode.EXEC_DENIED, `exec of '${command}' refused by policy (${hint})`);
    }
    return command;
  }

  /** The checked command and the absolute path to spawn; ENOENT when it is not installed. */
  async resolve(command: unknown): Promise<ResolvedCommand> {
    const name = this.check(command);
    let found = this.resolved.get(name);
    if (found === undefined) {
      found = await resolveBareCommand(name, { root: this.root, searchPath: this.searchPath });
      if (found !== undefined) this.resolved.set(name, found);
    }
    if (found === undefined) {
      throw new SystemError({ code: 'ENOENT', errno: -2, syscall: 'spawn', path: name, message: `exec '${name}': spawn ENOENT (not found in ${this.searchPath})` });
    }
    return { name, path: found };
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
      if (name === '.' || name === '..') throw agentError(AgentErrorCode.INVALID_PARAMS, `--allow-exec entry '${name}' is not a command name`);
      names.push(name);
    }
  }
  return names;
}

/** A short, bounded rendering of a client's value for an error message. */
export function describeValue(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = typeof value;
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
