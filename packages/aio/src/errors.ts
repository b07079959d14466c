import { SystemError, VmlinkError } from '@vmlink/errors';
import type { AioRequest } from './types.js';

const EBADF = 9;
const EINVAL = 22;

/** An error from a syscall, with how many bytes were transferred before it failed (writes). */
export interface IoError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  /** Bytes a write transferred before failing (e.g. ENOSPC mid-write); not counted as written. */
  bytesWritten?: number;
}

/** An operation on a closed file or backend: EBADF, like Node's. */
export function closedError(syscall: string, path?: string): SystemError {
  return new SystemError({
    code: 'EBADF',
    errno: EBADF,
    syscall,
    ...(path === undefined ? {} : { path }),
    message: `${syscall} EBADF${path === undefined ? '' : ` ${path}`}: the file or backend is closed`,
  });
}

/** A misaligned O_DIRECT request: EINVAL with the alignment that was broken. */
export function misalignedError(syscall: string, path: string, reason: string): SystemError {
  return new SystemError({
    code: 'EINVAL',
    errno: EINVAL,
    syscall,
    path,
    message: `${syscall} EINVAL ${path}: O_DIRECT request is misaligned (${reason})`,
  });
}

/** A system error from an FdIo gets the file's path, keeping code/errno/syscall/bytesWritten. */
export function withPath(error: unknown, path: string): unknown {
  const err = error as IoError;
  if (!(err instanceof Error) || typeof err.syscall !== 'string' || typeof err.code !== 'string' || err.path !== undefined) {
    return error;
  }
  const located = new SystemError({
    code: err.code,
    ...(err.errno === undefined ? {} : { errno: err.errno }),
    syscall: err.syscall,
    path,
  }) as SystemError & { bytesWritten?: number };
  if (err.bytesWritten !== undefined) located.bytesWritten = err.bytesWritten;
  return located;
}

/** A backend that cannot be created here (plugin not installed, addon missing). */
export function backendUnavailable(name: string, reason: string, cause?: unknown): VmlinkError {
  return new VmlinkError(
    'ERR_VMLINK_BACKEND_UNAVAILABLE',
    `aio backend '${name}' is unavailable: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

export function unknownOp(request: AioRequest): VmlinkError {
  const op = (request as { op?: unknown }).op;
  return new VmlinkError('ERR_INVALID_ARG_VALUE', `The request op must be one of read, readv, write, writev, fsync, fdatasync, fallocate, truncate, discard. Received ${String(op)}`);
}
