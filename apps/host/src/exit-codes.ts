/**
 * Exit codes scripts can rely on. `vmlink exec` exits with the remote command's own
 * code when the command ran; these codes apply only when it did not (like ssh, whose own
 * failures are 255, we keep ours above the range most commands use).
 */
export const ExitCode = {
  OK: 0,
  /** Anything not listed below. */
  FAILURE: 1,
  /** Bad command line. */
  USAGE: 2,
  /** Nothing listening at the URI (ECONNREFUSED, ENOENT on the socket, ENODEV...). */
  UNREACHABLE: 69,
  /** The agent did not answer in time (or is busy: retry later, sysexits' EX_TEMPFAIL). */
  TIMEOUT: 75,
  /** The agent refused: path outside --root, exec not allowed, file methods disabled, peer not allowed, limits. */
  POLICY: 77,
  /** The remote file or directory does not exist / cannot be accessed. */
  REMOTE_FILE: 66,
  /** A local file could not be read or written. */
  LOCAL_FILE: 73,
  /** The SHA-256 check failed: the copy is discarded. */
  INTEGRITY: 65,
  /** The connection broke in the middle of a request (agent killed, VM stopped). */
  CONNECTION_LOST: 74,
  /** The agent's protocol did not make sense (wrong peer on that URI?). */
  PROTOCOL: 76,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

const BY_CODE: ReadonlyMap<string, ExitCode> = new Map<string, ExitCode>([
  ['ERR_VMLINK_USAGE', ExitCode.USAGE],
  ['ERR_VMLINK_INVALID_ADDRESS', ExitCode.USAGE],
  // --transport MODULE that cannot be loaded, or two of them claiming one scheme.
  ['ERR_VMLINK_TRANSPORT_PLUGIN', ExitCode.USAGE],
  ['ERR_VMLINK_DUPLICATE_SCHEME', ExitCode.USAGE],
  ['ECONNREFUSED', ExitCode.UNREACHABLE],
  ['ENOENT_SOCKET', ExitCode.UNREACHABLE],
  ['ENODEV', ExitCode.UNREACHABLE],
  ['ENETUNREACH', ExitCode.UNREACHABLE],
  ['EHOSTUNREACH', ExitCode.UNREACHABLE],
  ['ERR_VMLINK_UNREACHABLE', ExitCode.UNREACHABLE],
  ['ETIMEDOUT', ExitCode.TIMEOUT],
  ['ERR_VMLINK_TIMEOUT', ExitCode.TIMEOUT],
  ['ABORT_ERR', ExitCode.TIMEOUT],
  ['ERR_VMLINK_EXEC_TIMEOUT', ExitCode.TIMEOUT],
  // The agent's stream memory is spent for now: like sysexits' EX_TEMPFAIL (75), retry later.
  ['ERR_VMLINK_BUSY', ExitCode.TIMEOUT],
  ['ERR_VMLINK_PATH_ESCAPE', ExitCode.POLICY],
  ['ERR_VMLINK_EXEC_DENIED', ExitCode.POLICY],
  ['ERR_VMLINK_FS_DISABLED', ExitCode.POLICY],
  ['ERR_VMLINK_REQUEST_TOO_LARGE', ExitCode.POLICY],
  ['ERR_VMLINK_TOO_MANY_STREAMS', ExitCode.POLICY],
  // Connection-level refusals (the agent says why in an id-less ERROR, then closes).
  ['ERR_VMLINK_PEER_NOT_ALLOWED', ExitCode.POLICY],
  ['ERR_VMLINK_TOO_MANY_CONNECTIONS', ExitCode.POLICY],
  ['ERR_VMLINK_METHOD_BLOCKED', ExitCode.POLICY],
  // rm -r / mv of the root the agent serves.
  ['ERR_VMLINK_ROOT_PROTECTED', ExitCode.POLICY],
  // forward / wait-port to a guest target the agent does not allow (--allow-forward).
  ['ERR_VMLINK_FORWARD_DISABLED', ExitCode.POLICY],
  ['ERR_VMLINK_FORWARD_DENIED', ExitCode.POLICY],
  // exec env not in --allow-env; detached processes off (--max-detached 0).
  ['ERR_VMLINK_ENV_DENIED', ExitCode.POLICY],
  ['ERR_VMLINK_DETACHED_DISABLED', ExitCode.POLICY],
  // As many detached processes run as the agent allows: retry once one ended (EX_TEMPFAIL).
  ['ERR_VMLINK_DETACHED_LIMIT', ExitCode.TIMEOUT],
  // An unknown detached id, like a missing file.
  ['ERR_VMLINK_NO_SUCH_PROCESS', ExitCode.REMOTE_FILE],
  ['ERR_VMLINK_NO_SUCH_STREAM', ExitCode.PROTOCOL],
  // A value the agent refuses (a mode with setuid bits, a bad offset): the command line's fault.
  ['ERR_VMLINK_INVALID_PARAMS', ExitCode.USAGE],
  ['ENOENT', ExitCode.REMOTE_FILE],
  ['ENOTDIR', ExitCode.REMOTE_FILE],
  ['EISDIR', ExitCode.REMOTE_FILE],
  ['EACCES', ExitCode.REMOTE_FILE],
  ['EPERM', ExitCode.REMOTE_FILE],
  ['ELOOP', ExitCode.REMOTE_FILE],
  ['ENOSPC', ExitCode.REMOTE_FILE],
  ['EEXIST', ExitCode.REMOTE_FILE],
  ['ENOTEMPTY', ExitCode.REMOTE_FILE],
  ['EXDEV', ExitCode.REMOTE_FILE],
  ['EBUSY', ExitCode.REMOTE_FILE],
  ['EINVAL', ExitCode.REMOTE_FILE],
  ['ERR_VMLINK_TOO_MANY_ENTRIES', ExitCode.REMOTE_FILE],
  ['ERR_VMLINK_INVALID_PATH', ExitCode.REMOTE_FILE],
  ['ERR_VMLINK_FILE_CHANGED', ExitCode.REMOTE_FILE],
  // fs.read of a FIFO, a device, a socket or a pseudo file (/proc) that reports 0 bytes.
  ['ERR_VMLINK_NOT_REGULAR_FILE', ExitCode.REMOTE_FILE],
  ['ERR_VMLINK_LOCAL_FILE', ExitCode.LOCAL_FILE],
  ['ERR_VMLINK_CHECKSUM_MISMATCH', ExitCode.INTEGRITY],
  ['ERR_VMLINK_SIZE_MISMATCH', ExitCode.INTEGRITY],
  ['ECONNRESET', ExitCode.CONNECTION_LOST],
  ['EPIPE', ExitCode.CONNECTION_LOST],
  ['ERR_VMLINK_CONNECTION_LOST', ExitCode.CONNECTION_LOST],
  ['ERR_VMLINK_PROTOCOL', ExitCode.PROTOCOL],
]);

/** The exit code for an error's `code` (FAILURE when unknown). */
export function exitCodeFor(code: string | undefined): ExitCode {
  return (code !== undefined && BY_CODE.get(code)) || ExitCode.FAILURE;
}

/** The table printed by `vmlink --help` and the README. */
export const EXIT_CODE_HELP = `Exit codes:
  0   success (exec: the remote command's own exit code; 127 not found, 126 not executable)
  1   other failure
  2   usage error
  65  checksum mismatch (the copy was discarded)
  66  remote file error (ENOENT, EISDIR, EEXIST, EACCES, not a regular file...; no such detached process)
  69  agent unreachable (nothing listening at the URI)
  73  local file error
  74  connection lost mid-request (agent killed, VM gone)
  75  timeout (or the agent is busy, or runs its most detached processes: retry later)
  76  protocol error (is that really a vmlink agent?)
  77  refused by the agent's policy (--root confinement, the root itself, --allow-exec, --allow-env,
      --allow-rpcs, --allow-cid/--allow-uid, --max-detached 0, limits)
`;
