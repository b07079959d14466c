import { invalidAddress } from './errors.js';
import type { TransportAddress } from './types.js';

/** RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

export interface SplitUri {
  /** Lower-cased scheme, without the colon. */
  readonly scheme: string;
  /** Everything after the colon (for `vsock://3:1024`, `//3:1024`). */
  readonly rest: string;
}

/** Split `scheme:rest`; anything that is not a string with a scheme is ERR_VMLINK_INVALID_ADDRESS. */
export function splitUri(input: unknown): SplitUri {
  if (typeof input !== 'string') throw invalidAddress(input, 'an address must be a URI string');
  const match = SCHEME.exec(input);
  if (!match?.[1]) throw invalidAddress(input, 'expected a URI such as unix:/path or vsock://CID:PORT');
  return { scheme: match[1].toLowerCase(), rest: input.slice(match[0].length) };
}

/** Split a URI and check that its scheme is one of `schemes`. */
export function splitUriFor(input: unknown, schemes: readonly string[]): SplitUri {
  const split = splitUri(input);
  if (!schemes.includes(split.scheme)) {
    throw invalidAddress(input, `scheme '${split.scheme}:' is not one of ${schemes.map((s) => `'${s}:'`).join(', ')}`);
  }
  return split;
}

/**
 * A decimal integer in [min, max] taken from a URI part: digits only, no sign, no
 * spaces, no leading zeros beyond a lone `0`. `what` names the part in the error.
 */
export function parseDecimal(text: string, input: string, what: string, min: number, max: number): number {
  if (!/^(0|[1-9][0-9]*)$/.test(text)) {
    throw invalidAddress(input, `${what} '${text}' is not a decimal integer`);
  }
  const value = Number(text);
  if (value < min || value > max) {
    throw invalidAddress(input, `${what} ${text} is out of range ${min}..${max}`);
  }
  return value;
}

/**
 * Accept a URI string or an address object from `parse()`; objects are parsed again from
 * their `uri` so a hand-made or mutated object cannot skip validation.
 */
export function resolveAddress<A extends TransportAddress>(address: A | string, parse: (uri: string) => A): A {
  if (typeof address === 'string') return parse(address);
  if (address !== null && typeof address === 'object' && typeof address.uri === 'string') return parse(address.uri);
  throw invalidAddress(address, 'an address must be a URI string or an object returned by parse()');
}
