import { constants } from 'node:os';

import { SystemError, VmlinkError } from '@vmlink/errors';

import { vsockUri } from './address.js';

/** The JS-side bound of a connect `timeout`, shaped like the kernel's own ETIMEDOUT. */
export function connectTimeoutError(cid: number, port: number): SystemError {
  return new SystemError({
    code: 'ETIMEDOUT',
    errno: constants.errno.ETIMEDOUT,
    syscall: 'connect',
    address: vsockUri(cid, port),
    cid,
    port,
  });
}

export function socketClosedError(): VmlinkError {
  return new VmlinkError('ERR_SOCKET_CLOSED', 'Socket is closed');
}

export function alreadyConnectedError(): VmlinkError {
  return new VmlinkError('ERR_VMLINK_SOCKET_CONNECTED', 'Socket is already connected or connecting; create a new one');
}

/** A SEQPACKET message longer than the receive buffer: the kernel kept only its start. */
export function messageTruncatedError(size: number, maxMessageSize: number): VmlinkError & { size: number; maxMessageSize: number } {
  const err = new VmlinkError(
    'ERR_VMLINK_MESSAGE_TRUNCATED',
    `A message of ${size} bytes was truncated to ${maxMessageSize} bytes (maxMessageSize); the rest is lost`,
  );
  return Object.assign(err, { size, maxMessageSize });
}

export function invalidFdTypeError(fd: number, why: string): VmlinkError {
  const err = new VmlinkError('ERR_INVALID_FD_TYPE', `Unsupported fd type: fd ${fd} ${why}`);
  err.name = 'TypeError';
  return err;
}
