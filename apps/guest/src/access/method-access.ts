import { AgentErrorCode, agentError } from '../errors.js';
import { METHODS, type MethodName } from '../protocol.js';

/**
 * Which methods are served, like qemu-guest-agent's --allow-rpcs / --block-rpcs: with
 * --allow-rpcs only those; --block-rpcs removes from whatever is allowed. Names are
 * checked against the agent's methods, so a typo is an error, never a silent no-op.
 */
export class MethodAccess {
  private constructor(private readonly served: ReadonlySet<MethodName>) {}

  /** Throws (ERR_VMLINK_INVALID_PARAMS) naming every unknown method. */
  static from(allow: readonly string[] | undefined, block: readonly string[]): MethodAccess {
    const unknown = [...(allow ?? []), ...block].filter((name) => !(METHODS as readonly string[]).includes(name));
    if (unknown.length > 0) {
      throw agentError(
        AgentErrorCode.INVALID_PARAMS,
        `unknown method${unknown.length > 1 ? 's' : ''} ${[...new Set(unknown)].map((n) => `'${n}'`).join(', ')} (methods: ${METHODS.join(', ')})`,
      );
    }
    const base = allow === undefined ? METHODS : (allow as readonly MethodName[]);
    const blocked = new Set(block);
    return new MethodAccess(new Set(base.filter((name) => !blocked.has(name))));
  }

  static all(): MethodAccess {
    return new MethodAccess(new Set(METHODS));
  }

  /** The methods served, in the agent's order. */
  get methods(): MethodName[] {
    return METHODS.filter((name) => this.served.has(name));
  }

  serves(method: MethodName): boolean {
    return this.served.has(method);
  }

  /** The refusal a blocked method gets. */
  blockedError(method: MethodName): Error {
    return agentError(AgentErrorCode.METHOD_BLOCKED, `method '${method}' is not served by this agent (--allow-rpcs/--block-rpcs)`);
  }
}

/** Splits `a,b` (repeatable) into names; empty entries are dropped. */
export function parseMethodList(values: readonly string[]): string[] {
  return values.flatMap((value) => value.split(',')).map((name) => name.trim()).filter((name) => name.length > 0);
}
