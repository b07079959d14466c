import { invalidAddress, splitUriFor, type TransportAddress } from '@vmlink/transport';

export const UNIX_SCHEMES = ['unix'] as const;

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_PATH_BYTES = 107;

export interface UnixAddress extends TransportAddress {
  readonly scheme: 'unix';
  /** Filesystem path, or the abstract name without its `@`. */
  readonly path: string;
  /** Linux abstract namespace (`unix:@name`): no file, gone when the listener closes. */
  readonly abstract: boolean;
}

/**
 * `unix:/run/app.sock`, `unix:relative.sock`, or `unix:@name` (abstract). The part
 * after `unix:` is taken as is, no percent-decoding. `unix://...` is refused: it reads
 * like a host name, and `unix:/path` already says everything.
 */
export function parseUnixAddress(input: string): UnixAddress {
  const { rest } = splitUriFor(input, UNIX_SCHEMES);
  if (rest.startsWith('//')) throw invalidAddress(input, "write unix:/absolute/path (no '//' authority part)");
  const abstract = rest.startsWith('@');
  const path = abstract ? rest.slice(1) : rest;
  if (path.length === 0) throw invalidAddress(input, abstract ? 'the abstract name is empty' : 'the path is empty');
  if (path.includes('\0')) throw invalidAddress(input, 'the path contains a NUL byte');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw invalidAddress(input, `the path is ${Buffer.byteLength(path)} bytes; a Unix socket path holds at most ${MAX_PATH_BYTES}`);
  }
  return { scheme: 'unix', uri: `unix:${rest}`, path, abstract };
}

/** What `net` wants: abstract names start with a NUL byte on Linux. */
export function netPath(address: UnixAddress): string {
  return address.abstract ? `\0${address.path}` : address.path;
}

/** URI of an unnamed socket (a client's own end, or the peer of an accepted socket). */
export const UNNAMED_UNIX_URI = 'unix:';
