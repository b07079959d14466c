/**
 * vmlink-guest as a library: start the agent in your own process, or reuse its pieces
 * (root confinement, exec policy, the info collector).
 */
export { Agent } from './agent.js';
export { parseGuestArgs, resolveAgentOptions, transportsFromEnv, type AgentStartOptions, DEFAULT_LIMITS, DEFAULT_LISTEN, GUEST_USAGE, type AgentOptions, type AgentLimits, type AccessOptions, type AioChoice } from './options.js';
export { MethodAccess } from './access/method-access.js';
export { decideAccess, HOST_CID, type PeerIdentity, type AccessDecision } from './access/peer-access.js';
export { RootJail, splitRemotePath } from './policy/confine.js';
export { ExecPolicy, parseAllowExec, type ResolvedCommand } from './policy/exec-policy.js';
export { FIXED_EXEC_PATH, resolveBareCommand } from './policy/exec-resolve.js';
export { collectInfo, type AgentInfo } from './info.js';
export type { FileType, ListEntry, ListResult, StatResult, TransferResult } from './methods/files.js';
export type { ExecResult } from './methods/exec.js';
export { createLogger, type AgentLogger, type RequestLogEntry } from './request-log.js';
export { AgentErrorCode } from './errors.js';
export { METHODS, type MethodName } from './protocol.js';
