import { SystemError, VmlinkError } from '@vmlink/errors';

/** The other end went away without ending the Connection (like a TCP reset). */
export function connectionReset(syscall: string, address: string, why: string): SystemError {
  return new SystemError({ code: 'ECONNRESET', errno: 104, syscall, address, message: `${syscall} ECONNRESET ${address} (${why})` });
}

/** Bytes where a record header had to be were not one: the stream cannot be trusted. */
export function protocolError(address: string, why: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_VIRTIO_SERIAL_PROTOCOL', `virtio-serial protocol error on ${address}: ${why}`);
}

/** A write dropped because its Connection was destroyed first (Node's code for that). */
export function destroyedError(): VmlinkError {
  return new VmlinkError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed');
}
