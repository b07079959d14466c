import { VmlinkError } from './errors.js';

/** A short printable form of any value, for error messages that name the bad input. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return `type string ('${shown}')`;
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `type ${typeof value} (${String(value)}${typeof value === 'bigint' ? 'n' : ''})`;
  }
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'symbol') return `type symbol (${String(value)})`;
  const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
  return ctor ? `an instance of ${ctor}` : 'type object';
}

export function invalidArgType(name: string, expected: string, value: unknown): VmlinkError {
  const err = new VmlinkError(
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${describeValue(value)}`,
  );
  err.name = 'TypeError';
  return err;
}

export function outOfRange(name: string, range: string, value: unknown): VmlinkError {
  const shown = typeof value === 'bigint' ? `${value}n` : String(value);
  const err = new VmlinkError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${shown}`);
  err.name = 'RangeError';
  return err;
}

/** An integer in [min, max]; a non-number is ERR_INVALID_ARG_TYPE, anything else ERR_OUT_OF_RANGE. */
export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  }
  return value;
}

export function validateUint32(value: unknown, name: string): number {
  return validateInteger(value, name, 0, 0xffff_ffff);
}

export function validateObject(value: unknown, name: string): asserts value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(name, 'of type object', value);
  }
}

export function validateFunction(value: unknown, name: string): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value);
}

export function validateBuffer(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidArgType(name, 'an instance of Buffer or Uint8Array', value);
}

export function validateAbortSignal(value: unknown, name: string): asserts value is AbortSignal | undefined {
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw invalidArgType(name, 'an instance of AbortSignal', value);
  }
}
