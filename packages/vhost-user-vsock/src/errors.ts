import { VmlinkError } from '@vmlink/errors';

export const VsockDeviceErrorCode = {
  /** A socket path (or `${udsPath}_<port>`) does not fit in sockaddr_un. */
  PATH_TOO_LONG: 'ERR_VMLINK_VSOCKD_PATH_TOO_LONG',
  /** Something already answers on a path the device would listen on. */
  PATH_IN_USE: 'ERR_VMLINK_VSOCKD_PATH_IN_USE',
  /** A path exists and is not a socket: we never delete what is not ours to reclaim. */
  PATH_NOT_SOCKET: 'ERR_VMLINK_VSOCKD_PATH_NOT_SOCKET',
  /** Two devices in one process (or one `--vm` list) share a path or a CID. */
  DUPLICATE: 'ERR_VMLINK_VSOCKD_DUPLICATE',
  /** The device is closed. */
  CLOSED: 'ERR_VMLINK_VSOCKD_CLOSED',
  /** A bad command line for vmlink-vsockd. */
  BAD_ARGUMENT: 'ERR_VMLINK_VSOCKD_BAD_ARGUMENT',
} as const;

export type VsockDeviceErrorCode = (typeof VsockDeviceErrorCode)[keyof typeof VsockDeviceErrorCode];

export class VsockDeviceError extends VmlinkError {
  constructor(code: VsockDeviceErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
