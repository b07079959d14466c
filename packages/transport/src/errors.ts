import { SystemError, VmlinkError, describeValue } from '@vmlink/errors';

/** `ERR_VMLINK_INVALID_ADDRESS`: the message quotes the input and says what is wrong. */
export function invalidAddress(input: unknown, reason: string): VmlinkError {
  const shown = typeof input === 'string' ? `'${input}'` : describeValue(input);
  const err = new VmlinkError('ERR_VMLINK_INVALID_ADDRESS', `Invalid address ${shown}: ${reason}`);
  err.name = 'TypeError';
  return err;
}

/** `ERR_VMLINK_UNSUPPORTED_OPERATION`: e.g. listen() on a dial-only transport. */
export function unsupportedOperation(transportName: string, operation: string, why: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_UNSUPPORTED_OPERATION', `Transport '${transportName}' cannot ${operation}: ${why}`);
}

/** The error of a dial that did not complete within its `timeout`, shaped like the kernel's. */
export function dialTimeoutError(address: string, timeoutMs: number): SystemError {
  return new SystemError({
    code: 'ETIMEDOUT',
    errno: 110,
    syscall: 'connect',
    address,
    message: `connect ETIMEDOUT ${address} (no connection within ${timeoutMs} ms)`,
  });
}
