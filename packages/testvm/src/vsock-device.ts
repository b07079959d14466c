import { testVmError, TestVmErrorCode } from './errors.js';

/**
 * The part of @vmlink/vhost-user-vsock's device testvm uses, declared here: the package is
 * an optional peer, imported only when a VM asks for vsock, so testvm builds and runs
 * without it.
 */
export interface VsockDeviceHandle {
  readonly socket: string;
  readonly udsPath: string;
  readonly guestCid: number;
  once(event: 'driver-ready', listener: () => void): unknown;
  close(): Promise<void>;
}

export interface VsockDeviceModule {
  createVsockDevice(options: { socket: string; udsPath: string; guestCid: number }): Promise<VsockDeviceHandle>;
}

export const DEVICE_PACKAGE = '@vmlink/vhost-user-vsock';

const NOT_FOUND_CODES = new Set(['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND']);

/**
 * Imports the device package, or throws ERR_VMLINK_TESTVM_VSOCK_DEVICE_MISSING saying how
 * to get it. `importer` is replaceable for tests; other import failures pass through.
 */
export async function loadDeviceModule(importer: (specifier: string) => Promise<unknown> = (specifier) => import(specifier)): Promise<VsockDeviceModule> {
  let loaded: unknown;
  try {
    loaded = await importer(DEVICE_PACKAGE);
  } catch (err) {
    const { code, message } = err as { code?: unknown; message?: unknown };
    // Only the package itself missing: a missing dependency inside it is a different fault.
    if (typeof code === 'string' && NOT_FOUND_CODES.has(code) && String(message).includes(`'${DEVICE_PACKAGE}'`)) {
      throw testVmError(
        TestVmErrorCode.VSOCK_DEVICE_MISSING,
        `startVm({ vsock }) needs the optional package ${DEVICE_PACKAGE} (the vhost-user vsock device): npm install ${DEVICE_PACKAGE}`,
        { cause: err },
      );
    }
    throw err;
  }
  const create = (loaded as { createVsockDevice?: unknown } | null)?.createVsockDevice;
  if (typeof create !== 'function') {
    throw testVmError(TestVmErrorCode.VSOCK_DEVICE_MISSING, `${DEVICE_PACKAGE} was found but exports no createVsockDevice function`);
  }
  return loaded as VsockDeviceModule;
}

/** Resolves on the device's first 'driver-ready': the guest's virtio vsock driver runs, host clients can connect. */
export function driverReady(device: VsockDeviceHandle): Promise<void> {
  return new Promise((resolve) => device.once('driver-ready', resolve));
}
