import { VmlinkError } from '@vmlink/errors';

/**
 * Codes the agent puts on the wire. Clients map them to exit codes, so they are part of
 * the protocol: never rename one.
 */
export const AgentErrorCode = {
  /** A path resolves (lexically or through a symlink) outside `--root`. */
  PATH_ESCAPE: 'ERR_VMLINK_PATH_ESCAPE',
  /** A path that is not a non-empty string without NUL bytes. */
  INVALID_PATH: 'ERR_VMLINK_INVALID_PATH',
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
} as const;
export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode];

export function agentError(code: AgentErrorCode, message: string, options?: { cause?: unknown }): VmlinkError {
  return new VmlinkError(code, message, options);
}
