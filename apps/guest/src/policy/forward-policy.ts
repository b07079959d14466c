import { isIPv4, isIPv6 } from 'node:net';
import { AgentErrorCode, agentError } from '../errors.js';
import { describeValue } from './exec-policy.js';

/** One `--allow-forward` entry: a TCP target inside the guest. */
export interface ForwardTarget {
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT` or `[V6]:PORT`; HOST an IP literal or `localhost` (names are not resolved: what is allowed is what is dialed). */
export function parseForwardTarget(text: string): ForwardTarget {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(text.trim());
  const rawHost = match?.[1];
  const host = rawHost?.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  const port = Number(match?.[2]);
  if (!host || !(isIPv4(host) || isIPv6(host) || host === 'localhost') || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`'${text}' is not HOST:PORT (an IP address or localhost, a port 1..65535)`);
  }
  return { host, port };
}

export function formatTarget(target: ForwardTarget): string {
  return isIPv6(target.host) ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}

/**
 * Which guest TCP targets `net.connect` / `net.probe` may reach: exactly the
 * `--allow-forward` list (default none: forwarding is off). Pure.
 */
export class ForwardPolicy {
  constructor(readonly allowed: readonly ForwardTarget[]) {}

  static parse(values: readonly string[]): ForwardPolicy {
    const entries = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
    return new ForwardPolicy(entries.map(parseForwardTarget));
  }

  /** The params' target if allowed; a typed refusal otherwise. */
  check(method: string, rawHost: unknown, rawPort: unknown): ForwardTarget {
    if (typeof rawHost !== 'string' || rawHost === '' || typeof rawPort !== 'number' || !Number.isInteger(rawPort) || rawPort < 1 || rawPort > 65535) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `${method}: host must be a string and port an integer 1..65535, got ${describeValue(rawHost)}:${describeValue(rawPort)}`);
    }
    if (this.allowed.length === 0) {
      throw agentError(AgentErrorCode.FORWARD_DISABLED, `${method}: port forwarding is not enabled on this agent (--allow-forward)`);
    }
    const target = { host: rawHost, port: rawPort };
    if (!this.allowed.some((a) => a.host === target.host && a.port === target.port)) {
      throw agentError(AgentErrorCode.FORWARD_DENIED, `${method}: forward to ${formatTarget(target)} not allowed (allowed: ${this.allowed.map(formatTarget).join(', ')})`);
    }
    return target;
  }
}
