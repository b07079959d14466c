/**
 * Codes the agent puts on the wire. Clients map them to exit codes and words, so they are
 * part of the protocol: never rename one. Besides these: errno names from the file system
 * (ENOENT, EISDIR, ENOSPC...) and @vmlink/rpc's own (ERR_VMLINK_IDLE_TIMEOUT...).
 */
export const AgentErrorCode = {
  /** A path resolves (lexically or through a symlink) outside `--root`. */
  PATH_ESCAPE: 'ERR_VMLINK_PATH_ESCAPE',
  /** A path that is not a non-empty string without NUL bytes. */
  INVALID_PATH: 'ERR_VMLINK_INVALID_PATH',
  /** fs.rm / fs.mv of the root directory itself. */
  ROOT_PROTECTED: 'ERR_VMLINK_ROOT_PROTECTED',
  /** File methods while the agent runs without `--root`. */
  FS_DISABLED: 'ERR_VMLINK_FS_DISABLED',
  /** `exec` of a command that is not in `--allow-exec`. */
  EXEC_DENIED: 'ERR_VMLINK_EXEC_DENIED',
  /** A request (params or body) larger than the agent accepts. */
  TOO_LARGE: 'ERR_VMLINK_REQUEST_TOO_LARGE',
  /** More concurrent streams on one connection than the agent allows. */
  TOO_MANY_STREAMS: 'ERR_VMLINK_TOO_MANY_STREAMS',
  /** The bytes received do not match the SHA-256 the client announced. */
  CHECKSUM_MISMATCH: 'ERR_VMLINK_CHECKSUM_MISMATCH',
  /** fs.write received fewer or more bytes than the client announced. */
  SIZE_MISMATCH: 'ERR_VMLINK_SIZE_MISMATCH',
  /** A file changed size while fs.read streamed it. */
  FILE_CHANGED: 'ERR_VMLINK_FILE_CHANGED',
  /** Malformed params (wrong type, missing field). */
  INVALID_PARAMS: 'ERR_VMLINK_INVALID_PARAMS',
  /** The client stopped reading a response body (went away, or cancelled). */
  CLIENT_GONE: 'ERR_VMLINK_CLIENT_GONE',
  /** The agent is shutting down and takes no new requests. */
  SHUTTING_DOWN: 'ERR_VMLINK_SHUTTING_DOWN',
  /** exec ran longer than `--exec-timeout`; its process group was killed. */
  EXEC_TIMEOUT: 'ERR_VMLINK_EXEC_TIMEOUT',
  /** The connecting peer (uid, CID) is not in `--allow-uid` / `--allow-cid`. */
  PEER_NOT_ALLOWED: 'ERR_VMLINK_PEER_NOT_ALLOWED',
  /** The method exists but `--allow-rpcs` / `--block-rpcs` do not serve it. */
  METHOD_BLOCKED: 'ERR_VMLINK_METHOD_BLOCKED',
  /** `--max-connections` (or the per-peer share of it) is in use and no idle one could be closed. */
  TOO_MANY_CONNECTIONS: 'ERR_VMLINK_TOO_MANY_CONNECTIONS',
  /** fs.read of a FIFO, device, socket, or a /proc-like file whose size is not its content: never opened for reading. */
  NOT_REGULAR_FILE: 'ERR_VMLINK_NOT_REGULAR_FILE',
  /** The agent's memory budget for streams is spent; retry later. */
  BUSY: 'ERR_VMLINK_BUSY',
  /** net.connect / net.probe on an agent without `--allow-forward`. */
  FORWARD_DISABLED: 'ERR_VMLINK_FORWARD_DISABLED',
  /** net.connect / net.probe to a target not in `--allow-forward`. */
  FORWARD_DENIED: 'ERR_VMLINK_FORWARD_DENIED',
  /** net.send / exec.stdin / exec.signal for an id this connection does not have open. */
  NO_SUCH_STREAM: 'ERR_VMLINK_NO_SUCH_STREAM',
  /** exec `env` names a variable not in `--allow-env`. */
  ENV_DENIED: 'ERR_VMLINK_ENV_DENIED',
  /** No detached process with that id (never started, or an exited one already forgotten). */
  NO_SUCH_PROCESS: 'ERR_VMLINK_NO_SUCH_PROCESS',
  /** As many detached processes run as the agent allows (`--max-detached`). */
  DETACHED_LIMIT: 'ERR_VMLINK_DETACHED_LIMIT',
  /** detached.start on an agent with `--max-detached 0`. */
  DETACHED_DISABLED: 'ERR_VMLINK_DETACHED_DISABLED',
} as const;
export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode];

/**
 * What each refusal means, in words a user reads before the agent's own message (which
 * names the value). Clients print these; the agent's message says the details.
 */
export const AGENT_ERROR_WORDS: Readonly<Record<string, string>> = {
  ERR_VMLINK_PATH_ESCAPE: 'that path leads outside the directory the agent serves',
  ERR_VMLINK_INVALID_PATH: 'not a usable path',
  ERR_VMLINK_ROOT_PROTECTED: 'the root directory the agent serves cannot be removed or moved',
  ERR_VMLINK_FS_DISABLED: 'file methods are not enabled on this agent (it runs without --root)',
  ERR_VMLINK_EXEC_DENIED: 'that command is not allowed on this agent (--allow-exec)',
  ERR_VMLINK_REQUEST_TOO_LARGE: 'the request is larger than the agent accepts',
  ERR_VMLINK_TOO_MANY_STREAMS: 'too many requests at once on this connection',
  ERR_VMLINK_CHECKSUM_MISMATCH: 'the data did not arrive intact; nothing was kept',
  ERR_VMLINK_SIZE_MISMATCH: 'the data did not arrive complete; nothing was kept',
  ERR_VMLINK_FILE_CHANGED: 'the file changed while it was being read',
  ERR_VMLINK_INVALID_PARAMS: 'the agent did not understand the request',
  ERR_VMLINK_CLIENT_GONE: 'the request was cancelled',
  ERR_VMLINK_SHUTTING_DOWN: 'the agent is shutting down',
  ERR_VMLINK_EXEC_TIMEOUT: 'the command ran too long and was killed (--exec-timeout)',
  ERR_VMLINK_PEER_NOT_ALLOWED: 'this user or machine is not allowed to use the agent',
  ERR_VMLINK_METHOD_BLOCKED: 'that operation is not enabled on this agent (--allow-rpcs/--block-rpcs)',
  ERR_VMLINK_TOO_MANY_CONNECTIONS: 'the agent has too many connections',
  ERR_VMLINK_NOT_REGULAR_FILE: 'not a regular file',
  ERR_VMLINK_BUSY: 'the agent is busy; retry later',
  ERR_VMLINK_FORWARD_DISABLED: 'port forwarding is not enabled on this agent (--allow-forward)',
  ERR_VMLINK_FORWARD_DENIED: 'forward not allowed: that guest address is not in the agent\'s --allow-forward',
  ERR_VMLINK_NO_SUCH_STREAM: 'that forwarded connection or command is not open on this connection',
  ERR_VMLINK_ENV_DENIED: 'that environment variable is not allowed on this agent (--allow-env)',
  ERR_VMLINK_NO_SUCH_PROCESS: 'no detached process with that id on this agent',
  ERR_VMLINK_DETACHED_LIMIT: 'the agent runs as many detached processes as it allows (--max-detached); wait for one to end or kill one',
  ERR_VMLINK_DETACHED_DISABLED: 'detached processes are not enabled on this agent (--max-detached 0)',
};

/** The words for `code`, if it is one of the agent's. */
export function describeAgentError(code: string | undefined): string | undefined {
  return code === undefined ? undefined : AGENT_ERROR_WORDS[code];
}
