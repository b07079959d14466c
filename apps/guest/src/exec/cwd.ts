import { AgentErrorCode, agentError } from '../errors.js';
import { reopenPath } from '../fs/beneath.js';
import type { RootJail } from '../policy/confine.js';

/** Where a command starts: a path for chdir, and the directory fd behind it to release after the spawn. */
export interface ResolvedCwd {
  /** `/proc/self/fd/N` of the directory opened beneath the root: chdir lands in exactly that directory. */
  readonly path: string;
  release(): Promise<void>;
}

/**
 * exec's `cwd`: absent means the root (or `/` without one). Otherwise a client path
 * resolved beneath `--root` by the same walk as the file methods (fs/beneath.ts: `..`
 * above the root and symlinks leading out are ERR_VMLINK_PATH_ESCAPE). The child chdirs
 * through the walk's directory fd, so a rename race between the check and the spawn
 * cannot move it elsewhere.
 */
export async function resolveCwd(jail: RootJail | undefined, cwd: unknown): Promise<ResolvedCwd> {
  if (cwd === undefined || cwd === null) {
    return { path: jail?.realRoot ?? '/', release: async () => undefined };
  }
  if (!jail) throw agentError(AgentErrorCode.FS_DISABLED, 'exec: cwd needs the agent to run with --root (it is resolved beneath it)');
  const walked = await jail.walk(cwd, 'directory');
  if (walked.name !== undefined) {
    await walked.release();
    throw agentError(AgentErrorCode.INVALID_PATH, `exec: cwd '${String(cwd)}' is not a directory`);
  }
  return { path: reopenPath(walked.dir.fd), release: () => walked.release() };
}
