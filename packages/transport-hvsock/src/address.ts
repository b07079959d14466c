import { invalidAddress, parseDecimal, splitUriFor, type TransportAddress } from '@vmlink/transport';

export const HVSOCK_SCHEMES = ['hvsock'] as const;

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_PATH_BYTES = 107;
const MAX_PORT = 0xffff_ffff;

export interface HvsockAddress extends TransportAddress {
  readonly scheme: 'hvsock';
  /** The VMM's Unix socket (`uds_path`) for this guest. */
  readonly path: string;
  /** The guest vsock port: dialed through `CONNECT <port>`; listened on at `<path>_<port>`. */
  readonly port: number;
}

/**
 * `hvsock:/path/to/v.sock:PORT`: the port is what follows the LAST ':' (a path may
 * contain colons). Taken literally, no percent-decoding. Refused: `hvsock://...`, an
 * abstract `@name` (VMMs bind filesystem paths), an empty path, a NUL byte, a path over
 * the 107-byte sun_path limit, a port that is not a decimal u32.
 */
export function parseHvsockAddress(input: string): HvsockAddress {
  const { rest } = splitUriFor(input, HVSOCK_SCHEMES);
  if (rest.startsWith('//')) throw invalidAddress(input, "write hvsock:/absolute/path:PORT (no '//' authority part)");
  const colon = rest.lastIndexOf(':');
  if (colon === -1) throw invalidAddress(input, 'expected hvsock:/path/to/v.sock:PORT (no port after a colon)');
  const path = rest.slice(0, colon);
  const port = parseDecimal(rest.slice(colon + 1), input, 'port', 0, MAX_PORT);
  if (path.length === 0) throw invalidAddress(input, 'the path is empty');
  if (path.startsWith('@')) throw invalidAddress(input, 'abstract socket names are not used by hybrid vsock; give the VMM socket path');
  if (path.includes('\0')) throw invalidAddress(input, 'the path contains a NUL byte');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw invalidAddress(input, `the path is ${Buffer.byteLength(path)} bytes; a Unix socket path holds at most ${MAX_PATH_BYTES}`);
  }
  return { scheme: 'hvsock', uri: `hvsock:${path}:${port}`, path, port };
}

/** Where the VMM connects for guest-initiated connections to host port `port`. */
export function listenPathOf(address: HvsockAddress): string {
  const path = `${address.path}_${address.port}`;
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw invalidAddress(address.uri, `the listening socket '${path}' would be ${Buffer.byteLength(path)} bytes; a Unix socket path holds at most ${MAX_PATH_BYTES}`);
  }
  return path;
}

/** URI of an end that has no hvsock name (a dialer's own end, a guest that dialed us). */
export const UNNAMED_HVSOCK_URI = 'hvsock:';
