/** The vmlink host CLI as a library: run it in-process, or reuse its pieces. */
export { runCli } from './run.js';
export { connectAgent, type ConnectOptions } from './rpc-client.js';
export type { AgentClient, AgentInfo, StatResult, ListResult, TransferResult, ExecResult, WriteOptions } from './agent-client.js';
export { parseHostArgs, HELP, UsageError, transportsFromEnv, type Command, type CommonOptions } from './args.js';
export { COMMAND_NAMES, COMMAND_OPTIONS, COMMON_OPTIONS, didYouMean, type CommandName } from './options-spec.js';
export { splitRemoteSpec, parseEndpoint, planCopy, type Endpoint, type CopyPlan } from './remote-spec.js';
export { ExitCode, exitCodeFor, EXIT_CODE_HELP } from './exit-codes.js';
export { ProgressBar, renderProgressLine, formatBytes, formatDuration } from './progress.js';
