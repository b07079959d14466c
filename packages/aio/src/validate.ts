import { invalidArgType, outOfRange, validateAbortSignal } from '@vmlink/errors';
import type { OpOptions, Position } from './types.js';

/** The largest file offset the kernel accepts (loff_t is a signed 64-bit integer). */
export const MAX_POSITION = (1n << 63n) - 1n;

/** The most buffers one readv/writev may carry (the kernel's IOV_MAX). */
export const MAX_BUFFERS = 1024;

const POSITION_RANGE = 'an integer >= 0 and <= 2 ** 63 - 1';

/**
 * A file offset: a safe integer number >= 0 or a bigint in 0..2^63-1. Returns it as given
 * (number or bigint). Anything else is ERR_INVALID_ARG_TYPE or ERR_OUT_OF_RANGE naming it.
 */
export function validatePosition(value: unknown, name = 'position'): Position {
  if (typeof value === 'bigint') {
    if (value < 0n || value > MAX_POSITION) throw outOfRange(name, POSITION_RANGE, value);
    return value;
  }
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number or bigint', value);
  if (!Number.isSafeInteger(value) || value < 0) throw outOfRange(name, POSITION_RANGE, value);
  return value;
}

/** A position as a bigint, for arithmetic that must not lose precision. */
export function positionToBigInt(position: Position): bigint {
  return typeof position === 'bigint' ? position : BigInt(position);
}

/** A position as a number when it is a safe integer, else as a bigint. */
export function normalizePosition(position: Position): Position {
  if (typeof position === 'bigint' && position <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(position);
  return position;
}

/** A Buffer/Uint8Array, else ERR_INVALID_ARG_TYPE naming what was given. */
export function validateBuffer(value: unknown, name = 'buffer'): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidArgType(name, 'an instance of Buffer or Uint8Array', value);
  return value;
}

/** A non-empty array (at most MAX_BUFFERS) of Buffers/Uint8Arrays. */
export function validateBuffers(value: unknown, name = 'buffers'): readonly Uint8Array[] {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an Array of Buffer or Uint8Array', value);
  if (value.length === 0 || value.length > MAX_BUFFERS) {
    throw outOfRange(`${name}.length`, `>= 1 and <= ${MAX_BUFFERS}`, value.length);
  }
  // A plain loop: the element's name is built only for the error (a string per buffer per
  // request showed in the warm-read profile).
  for (let index = 0; index < value.length; index++) {
    if (!(value[index] instanceof Uint8Array)) validateBuffer(value[index], `${name}[${index}]`);
  }
  return value as readonly Uint8Array[];
}

/** `{ signal? }`; returns the signal (or undefined). */
export function validateOpOptions(value: unknown, name = 'options'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'of type object', value);
  const signal = (value as OpOptions).signal;
  validateAbortSignal(signal, `${name}.signal`);
  return signal;
}

/** open() flags: a node:fs flag string or a non-negative integer (fs.constants, may include O_DIRECT). */
export function validateOpenFlags(value: unknown, name = 'flags'): string | number {
  if (typeof value === 'string') return value;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type string or number', value);
  if (!Number.isInteger(value) || value < 0 || value > 0x7fff_ffff) {
    throw outOfRange(name, 'an integer >= 0 and <= 2 ** 31 - 1', value);
  }
  return value;
}

/** Total byte length of a buffer list. */
export function totalLength(buffers: readonly Uint8Array[]): number {
  let total = 0;
  for (const buffer of buffers) total += buffer.byteLength;
  return total;
}

/** The part of a buffer list after its first `count` bytes (views, not copies): what a short transfer left. */
export function skipBytes(buffers: readonly Uint8Array[], count: number): Uint8Array[] {
  let left = count;
  const rest: Uint8Array[] = [];
  for (const buffer of buffers) {
    if (left >= buffer.byteLength) {
      left -= buffer.byteLength;
      continue;
    }
    rest.push(left > 0 ? buffer.subarray(left) : buffer);
    left = 0;
  }
  return rest;
}
