import { ftruncate } from 'node:fs';
import { outOfRange, SystemError, VmlinkError, describeValue } from '@vmlink/errors';
import { tryNativeBinding } from './native.js';
import type { FallocateMode, FdIo, Position, SpaceRequest } from './types.js';
import { normalizePosition, validatePosition } from './validate.js';

/** Linux fallocate(2) mode bits (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

const MODE_BITS: Readonly<Record<FallocateMode, number>> = Object.freeze({
  allocate: 0,
  'keep-size': FALLOC_FL_KEEP_SIZE,
  // The kernel accepts PUNCH_HOLE only together with KEEP_SIZE.
  'punch-hole': FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
  'zero-range': FALLOC_FL_ZERO_RANGE,
  'zero-range-keep-size': FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
});

/** Every FallocateMode name, in a stable order. */
export const FALLOCATE_MODES: readonly FallocateMode[] = Object.freeze(Object.keys(MODE_BITS) as FallocateMode[]);

const EOPNOTSUPP = 95;

/** The fallocate(2) mode bits for a mode name. */
export function fallocateModeBits(mode: FallocateMode): number {
  return MODE_BITS[mode];
}

/** A FallocateMode name; anything else is ERR_INVALID_ARG_VALUE naming the value and the choices. */
export function validateFallocateMode(value: unknown, name = 'mode'): FallocateMode {
  if (typeof value === 'string' && Object.hasOwn(MODE_BITS, value)) return value as FallocateMode;
  const error = new VmlinkError(
    'ERR_INVALID_ARG_VALUE',
    `The argument '${name}' must be one of ${FALLOCATE_MODES.map((mode) => `'${mode}'`).join(', ')}. Received ${describeValue(value)}`,
  );
  error.name = 'TypeError';
  throw error;
}

/** A byte count for fallocate/discard: like a position, but at least 1 (the kernel refuses 0). */
export function validateLength(value: unknown, name = 'length'): Position {
  const length = validatePosition(value, name);
  if (length === 0 || length === 0n) throw outOfRange(name, 'an integer >= 1 and <= 2 ** 63 - 1', value);
  return length;
}

/** Checks a SpaceRequest's fields (the op is trusted); returns the request with its checked values. */
export function validateSpaceRequest(request: SpaceRequest): SpaceRequest {
  switch (request.op) {
    case 'fallocate':
      return {
        op: 'fallocate',
        mode: validateFallocateMode(request.mode),
        offset: validatePosition(request.offset, 'offset'),
        length: validateLength(request.length),
      };
    case 'truncate':
      return { op: 'truncate', size: validatePosition(request.size, 'size') };
    case 'discard':
      return { op: 'discard', offset: validatePosition(request.offset, 'offset'), length: validateLength(request.length) };
  }
}

/**
 * Runs a validated space request on `fd` through `io` when it has the method, else
 * through the fs reference (libuv's pool): the path every AioFile shares, so a backend
 * whose FdIo lacks these operations still has them.
 */
export function runSpaceRequest(io: FdIo | undefined, fd: number, request: SpaceRequest, signal: AbortSignal | undefined): Promise<void> {
  const options = { signal };
  switch (request.op) {
    case 'fallocate':
      return io?.fallocate !== undefined
        ? io.fallocate(fd, request.mode, request.offset, request.length, options)
        : fsFallocate(fd, request.mode, request.offset, request.length);
    case 'truncate':
      return io?.truncate !== undefined ? io.truncate(fd, request.size, options) : fsTruncate(fd, request.size);
    case 'discard':
      return io?.discard !== undefined ? io.discard(fd, request.offset, request.length, options) : fsDiscard(fd, request.offset, request.length);
  }
}

/** ftruncate through node:fs (it takes a number: sizes past 2^53 are refused, as for fs writes). */
export function fsTruncate(fd: number, size: Position): Promise<void> {
  const length = normalizePosition(size);
  if (typeof length !== 'number') return Promise.reject(outOfRange('size', 'a safe integer for the fs backend', size));
  return new Promise<void>((resolve, reject) => ftruncate(fd, length, (error) => (error ? reject(error) : resolve())));
}

/**
 * fallocate(2) for the fs reference: node:fs has none, so it is the addon's fallocate run
 * on libuv's pool (the same threads node:fs uses). Without the addon (or off Linux) every
 * mode is EOPNOTSUPP, saying why.
 */
export function fsFallocate(fd: number, mode: FallocateMode, offset: Position, length: Position): Promise<void> {
  const native = tryNativeBinding();
  if (native === undefined) return Promise.reject(unsupported('fallocate', mode));
  return native.fileFallocate(fd, fallocateModeBits(mode), BigInt(offset), BigInt(length));
}

/** discard for the fs reference: punch-hole on a file, BLKDISCARD on a block device (the addon, on libuv's pool). */
export function fsDiscard(fd: number, offset: Position, length: Position): Promise<void> {
  const native = tryNativeBinding();
  if (native === undefined) return Promise.reject(unsupported('fallocate', 'discard'));
  return native.fileDiscard(fd, BigInt(offset), BigInt(length));
}

function unsupported(syscall: string, what: string): SystemError {
  return new SystemError({
    code: 'EOPNOTSUPP',
    errno: EOPNOTSUPP,
    syscall,
    message: `${syscall} EOPNOTSUPP: '${what}' needs the @vmlink/native addon on Linux (node:fs has no fallocate)`,
  });
}
