import { AgentErrorCode } from '@vmlink/agent-protocol';
import { VmlinkError } from '@vmlink/errors';

/** The wire codes are the protocol's (@vmlink/agent-protocol); the agent builds its errors here. */
export { AgentErrorCode };

export function agentError(code: AgentErrorCode, message: string, options?: { cause?: unknown }): VmlinkError {
  return new VmlinkError(code, message, options);
}
