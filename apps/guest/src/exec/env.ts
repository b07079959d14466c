import { VmlinkError } from '@vmlink/errors';
import { AgentErrorCode, agentError } from '../errors.js';
import { describeValue } from '../policy/exec-policy.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Names `--allow-env` may never hold: they would undo exec's fixed PATH (a client could
 * point PATH into the root) or load a client's uploaded library into an allowed command.
 */
export function isForbiddenEnvName(name: string): boolean {
  return name === 'PATH' || name.startsWith('LD_') || name === 'GCONV_PATH' || name === 'NODE_OPTIONS';
}

/** Parses `--allow-env A,B` (repeatable): names only; PATH and LD_* are refused. */
export function parseAllowEnv(values: readonly string[]): string[] {
  const names: string[] = [];
  for (const value of values) {
    for (const raw of value.split(',')) {
      const name = raw.trim();
      if (name === '') continue;
      if (!NAME.test(name)) throw agentError(AgentErrorCode.INVALID_PARAMS, `--allow-env entry '${name}' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)`);
      if (isForbiddenEnvName(name)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `--allow-env ${name}: refused, a client could use it to run code of its choosing (PATH, LD_*, GCONV_PATH, NODE_OPTIONS)`);
      }
      if (!names.includes(name)) names.push(name);
    }
  }
  return names;
}

/**
 * exec's `env`: absent, or an object of string values whose every name the agent allows.
 * The first refused name is ERR_VMLINK_ENV_DENIED naming it.
 */
export function checkEnv(raw: unknown, allowed: readonly string[]): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: env must be an object of NAME: value strings, got ${describeValue(raw)}`);
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!allowed.includes(name)) {
      const hint = allowed.length === 0 ? 'no --allow-env on this agent' : `allowed: ${allowed.join(', ')}`;
      throw new VmlinkError(AgentErrorCode.ENV_DENIED, `exec: env name ${describeValue(name)} refused by policy (${hint})`);
    }
    if (typeof value !== 'string' || value.includes('\0')) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: env ${name} must be a string without NUL bytes, got ${describeValue(value)}`);
    }
    out[name] = value;
  }
  return out;
}
