import { validateObject, validateUint32 } from '@vmlink/errors';

import { VMADDR_CID_ANY, VMADDR_PORT_ANY } from './constants.js';

/** A vsock address: context id (which machine) and port. */
export interface VsockAddress {
  cid: number;
  port: number;
}

/** `vsock://cid:port`, the form used in error messages. */
export function vsockUri(cid: number, port: number): string {
  return `vsock://${cid}:${port}`;
}

/** CID and port of a connect target: both required uint32 (ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE). */
export function validateTarget(options: unknown, what: string): VsockAddress {
  validateObject(options, what);
  return {
    cid: validateUint32(options.cid, `${what}.cid`),
    port: validateUint32(options.port, `${what}.port`),
  };
}

/** CID and port to bind: default to any CID and an ephemeral port. */
export function validateBindAddress(options: Record<string, unknown>, what: string): VsockAddress {
  return {
    cid: options.cid === undefined ? VMADDR_CID_ANY : validateUint32(options.cid, `${what}.cid`),
    port: options.port === undefined ? VMADDR_PORT_ANY : validateUint32(options.port, `${what}.port`),
  };
}

/** A stream socket's address(): net.Socket's fields (`address`, `family`, `port`) next to `cid`. */
export interface VsockSocketAddress extends VsockAddress {
  /** The CID as a decimal string, where net has the IP address. */
  address: string;
  family: 'vsock';
}

/** address() of a stream socket: net-shaped, or {} before the address is known (as net does). */
export function socketAddressOf(cid: number | undefined, port: number | undefined): VsockSocketAddress | Record<string, never> {
  if (cid === undefined || port === undefined) return {};
  return { cid, port, address: String(cid), family: 'vsock' };
}

/** A connected socket's address(): this end's CID and port, or {} before it has them (as net does). */
export function localAddressOf(socket: { localCid: number | undefined; localPort: number | undefined }): VsockAddress | Record<string, never> {
  if (socket.localCid === undefined || socket.localPort === undefined) return {};
  return { cid: socket.localCid, port: socket.localPort };
}
