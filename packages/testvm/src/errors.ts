import { VmlinkError } from '@vmlink/errors';

/** Every error code @vmlink/testvm throws, in one place so callers can match on them. */
export const TestVmErrorCode = {
  SHARE_NOT_FOUND: 'ERR_VMLINK_TESTVM_SHARE_NOT_FOUND',
  BAD_SHARE: 'ERR_VMLINK_TESTVM_BAD_SHARE',
  BAD_PORT_NAME: 'ERR_VMLINK_TESTVM_BAD_PORT_NAME',
  UNKNOWN_PORT: 'ERR_VMLINK_TESTVM_UNKNOWN_PORT',
  BAD_CWD: 'ERR_VMLINK_TESTVM_BAD_CWD',
  QEMU_NOT_FOUND: 'ERR_VMLINK_TESTVM_QEMU_NOT_FOUND',
  PROGRAM_NOT_FOUND: 'ERR_VMLINK_TESTVM_PROGRAM_NOT_FOUND',
  KERNEL_NOT_FOUND: 'ERR_VMLINK_TESTVM_KERNEL_NOT_FOUND',
  BUILD_FAILED: 'ERR_VMLINK_TESTVM_BUILD_FAILED',
  BOOT_TIMEOUT: 'ERR_VMLINK_TESTVM_BOOT_TIMEOUT',
  BOOT_FAILED: 'ERR_VMLINK_TESTVM_BOOT_FAILED',
  /** The guest kernel said it hung (soft lockup, RCU stall, hung task) before our init was ready. */
  BOOT_HUNG: 'ERR_VMLINK_TESTVM_BOOT_HUNG',
  RUN_TIMEOUT: 'ERR_VMLINK_TESTVM_RUN_TIMEOUT',
  GUEST_EXITED: 'ERR_VMLINK_TESTVM_GUEST_EXITED',
  STOPPED: 'ERR_VMLINK_TESTVM_STOPPED',
  PROTOCOL: 'ERR_VMLINK_TESTVM_PROTOCOL',
  UNSUPPORTED_ARCH: 'ERR_VMLINK_TESTVM_UNSUPPORTED_ARCH',
  VSOCK_DEVICE_MISSING: 'ERR_VMLINK_TESTVM_VSOCK_DEVICE_MISSING',
} as const;

export type TestVmErrorCode = (typeof TestVmErrorCode)[keyof typeof TestVmErrorCode];

/** The Debian packages a host needs to boot the test guest. */
export const HOST_PACKAGES = ['qemu-system-x86', 'qemu-system-data', 'busybox-static', 'socat'] as const;

export const APT_INSTALL_LINE = `apt-get update && apt-get install -y ${HOST_PACKAGES.join(' ')}`;

export function testVmError(code: TestVmErrorCode, message: string, options?: { cause?: unknown }): VmlinkError {
  return new VmlinkError(code, message, options);
}

/**
 * A guest that did not come up (or went away) carries what the console printed last,
 * because that is nearly always where the reason is.
 */
export class GuestError extends VmlinkError {
  readonly consoleTail: string;

  constructor(code: TestVmErrorCode, message: string, consoleTail: string, options?: { cause?: unknown }) {
    const shown = consoleTail.trim() === '' ? '' : `\n--- guest console (last lines) ---\n${consoleTail.trimEnd()}`;
    super(code, `${message}${shown}`, options);
    this.consoleTail = consoleTail;
  }
}

/** A command that outlived its `timeoutMs`; the output it made so far is kept. */
export class RunTimeoutError extends VmlinkError {
  readonly stdout: string;
  readonly stderr: string;

  constructor(message: string, stdout: string, stderr: string) {
    super(TestVmErrorCode.RUN_TIMEOUT, message);
    this.stdout = stdout;
    this.stderr = stderr;
  }
}
