import { invalidAddress, splitUriFor, type TransportAddress } from '@vmlink/transport';

/** Guest side: the port's character device, `/dev/virtio-ports/NAME`. */
export const GUEST_SCHEME = 'virtio-serial';
/** Host side: QEMU's `-chardev socket,path=...,server=on` behind the port. */
export const HOST_SCHEME = 'virtio-serial+unix';

/** The guest's device folder; the links come from udev (or are made by the init script). */
export const VIRTIO_PORTS_DIR = '/dev/virtio-ports';

const MAX_PORT_NAME = 255;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export interface GuestPortAddress extends TransportAddress {
  readonly scheme: typeof GUEST_SCHEME;
  /** The port name given to QEMU (`-device virtserialport,name=NAME`). */
  readonly name: string;
  /** `/dev/virtio-ports/NAME`. */
  readonly devicePath: string;
}

export interface HostSocketAddress extends TransportAddress {
  readonly scheme: typeof HOST_SCHEME;
  /** Path of QEMU's chardev Unix socket. */
  readonly path: string;
}

export type VirtioSerialAddress = GuestPortAddress | HostSocketAddress;

/** URI of the other end when it has no name we can know (the guest cannot see the host's socket path). */
export const UNNAMED_HOST_URI = `${HOST_SCHEME}:`;

/**
 * `virtio-serial:NAME` (guest) or `virtio-serial+unix:/path/to/chardev.sock` (host),
 * restricted to `schemes`. The rest of the URI is taken as is, no percent-decoding.
 */
export function parseVirtioSerialAddress(input: string, schemes: readonly string[]): VirtioSerialAddress {
  const { scheme, rest } = splitUriFor(input, schemes);
  if (scheme === GUEST_SCHEME) {
    const name = rest;
    let problem: string | undefined;
    if (name.length === 0) problem = 'the port name is empty';
    else if (name.length > MAX_PORT_NAME) problem = `the port name is longer than ${MAX_PORT_NAME} characters`;
    else if (!/^[\x21-\x7e]+$/.test(name)) problem = 'a port name is printable ASCII without spaces';
    else if (name.includes('/')) problem = "a port name cannot contain '/'";
    else if (name === '.' || name === '..') problem = "a port name cannot be '.' or '..'";
    if (problem !== undefined) throw invalidAddress(input, problem);
    return { scheme: GUEST_SCHEME, uri: `${GUEST_SCHEME}:${name}`, name, devicePath: `${VIRTIO_PORTS_DIR}/${name}` };
  }
  const path = rest;
  if (path.startsWith('//')) throw invalidAddress(input, `write ${HOST_SCHEME}:/absolute/path (no '//' authority part)`);
  if (path.length === 0) throw invalidAddress(input, 'the socket path is empty');
  if (path.includes('\0')) throw invalidAddress(input, 'the socket path contains a NUL byte');
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw invalidAddress(input, `the socket path is ${bytes} bytes; a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`);
  }
  return { scheme: HOST_SCHEME, uri: `${HOST_SCHEME}:${path}`, path };
}
