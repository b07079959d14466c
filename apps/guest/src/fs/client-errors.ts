import { getSystemErrorMap } from 'node:util';
import { SystemError } from '@vmlink/errors';

/**
 * Errors of the file methods name the path as the client spelled it (`/nope`), never the
 * agent's real path or the `/proc/self/fd/N/...` form the methods open: a client must
 * not learn where --root lives, and its own path is what it can act on.
 */

/** A system-shaped error (errno name, syscall) that names the client's path. */
export function systemError(code: string, syscall: string, clientPath: string, message?: string): SystemError {
  const errno = errnoOf(code);
  return new SystemError({ code, errno, syscall, path: clientPath, message: message ?? `${code}: ${describeErrno(code)}, ${syscall} '${clientPath}'` });
}

/**
 * Re-labels an error from node:fs (or an AIO backend) with the client's path; agent errors
 * (ERR_VMLINK_*, built with the client's path already) and aborts pass through unchanged.
 */
export function forClient(error: unknown, clientPath: string): unknown {
  const e = error as Partial<NodeJS.ErrnoException> | undefined;
  // Only errors of a system call on a path carry one to replace; others (a client's body
  // failing with ECONNRESET, ERR_VMLINK_*, aborts) pass unchanged.
  if (typeof e?.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code) || typeof e.syscall !== 'string') return error;
  // Ours already (built with the client's path and a chosen message): keep it.
  if (error instanceof SystemError && error.path === clientPath) return error;
  return systemError(e.code, e.syscall, clientPath);
}

function errnoOf(code: string): number | undefined {
  for (const [errno, [name]] of getSystemErrorMap()) if (name === code) return errno;
  return undefined;
}

function describeErrno(code: string): string {
  const errno = errnoOf(code);
  return (errno === undefined ? undefined : getSystemErrorMap().get(errno)?.[1]) ?? code;
}
