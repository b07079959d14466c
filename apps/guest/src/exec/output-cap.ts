import { AgentErrorCode, agentError } from '../errors.js';
import { describeValue } from '../policy/exec-policy.js';

export type OutputStream = 'stdout' | 'stderr';

/** Per-stream byte caps: the client's request, never above the agent's ceiling. */
export interface OutputCaps {
  readonly stdout: number;
  readonly stderr: number;
}

/** exec's `maxOutput: { stdout?, stderr? }` against the agent's ceiling (`--exec-max-output`). */
export function resolveOutputCaps(raw: unknown, ceiling: number): OutputCaps {
  if (raw === undefined || raw === null) return { stdout: ceiling, stderr: ceiling };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: maxOutput must be { stdout?, stderr? } byte counts, got ${describeValue(raw)}`);
  }
  const pick = (name: OutputStream): number => {
    const value = (raw as Record<string, unknown>)[name];
    if (value === undefined) return ceiling;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: maxOutput.${name} must be an integer >= 0, got ${describeValue(value)}`);
    }
    return Math.min(value, ceiling);
  };
  for (const key of Object.keys(raw)) {
    if (key !== 'stdout' && key !== 'stderr') throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: maxOutput has an unknown stream ${describeValue(key)}`);
  }
  return { stdout: pick('stdout'), stderr: pick('stderr') };
}

/**
 * Counts what a stream delivered against its cap. `take(chunk)` returns what may still be
 * sent (all, a prefix, or nothing) and whether the cap is reached with it.
 */
export class OutputMeter {
  private sent = 0;
  private cut = false;

  constructor(readonly cap: number) {}

  take(chunk: Uint8Array): { keep: Uint8Array; reached: boolean } {
    const room = this.cap - this.sent;
    if (chunk.length < room) {
      this.sent += chunk.length;
      return { keep: chunk, reached: false };
    }
    // Exactly at the cap: the stream may have ended there; that is truncation too only if
    // more comes (the next take() of a non-empty chunk).
    const keep = chunk.subarray(0, Math.max(0, room));
    this.sent += keep.length;
    if (chunk.length > room) this.cut = true;
    return { keep, reached: this.cut };
  }

  /** Bytes delivered so far. */
  get bytes(): number {
    return this.sent;
  }

  /** True once bytes beyond the cap were dropped. */
  get truncated(): boolean {
    return this.cut;
  }
}
