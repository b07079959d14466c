/**
 * vmlink-guest as a library: start the agent in your own process, or reuse its pieces
 * (root confinement, exec policy, the info collector).
 */
export { Agent } from './agent.js';
export { parseGuestArgs, DEFAULT_LIMITS, DEFAULT_LISTEN, GUEST_USAGE, type AgentOptions, type AgentLimits, type AioChoice } from './options.js';
export { RootJail, splitRemotePath } from './policy/confine.js';
export { ExecPolicy, parseAllowExec } from './policy/exec-policy.js';
export { collectInfo, type AgentInfo } from './info.js';
export type { FileType, ListEntry, ListResult, StatResult, TransferResult } from './methods/files.js';
export type { ExecResult } from './methods/exec.js';
export { createLogger, type AgentLogger, type RequestLogEntry } from './request-log.js';
export { AgentErrorCode } from './errors.js';
export { METHODS, type MethodName } from './protocol.js';
