/** The vmlink host CLI as a library: run it in-process, or reuse its pieces. */
export { runCli } from './run.js';
export { connectAgent, type ConnectOptions } from './rpc-client.js';
export type { AgentClient, AgentInfo, StatResult, ListResult, TransferResult, ExecResult } from './agent-client.js';
export { parseHostArgs, HELP, type Command } from './args.js';
export { splitRemoteSpec, parseEndpoint, planCopy, type Endpoint, type CopyPlan } from './remote-spec.js';
export { ExitCode, exitCodeFor, EXIT_CODE_HELP } from './exit-codes.js';
export { ProgressBar, renderProgressLine, formatBytes, formatDuration } from './progress.js';
