/**
 * The agent's vocabulary on top of @vmlink/rpc lives in @vmlink/agent-protocol, shared
 * with the host CLI; this module re-exports what the agent uses.
 */
export { METHODS, type MethodName, READ_TRAILER_BYTES, ExecRecordTag, encodeExecRecord } from '@vmlink/agent-protocol';
