export { startVm } from './start-vm.js';
export { Vm, defaultGuestEnv, type RunOptions, type RunResult, type VmTimings, type CommandSummary } from './vm.js';
export type { StartVmOptions, PortSpec } from './options.js';
export type { GuestInfo } from './protocol.js';
export { TestVmErrorCode, GuestError, RunTimeoutError, APT_INSTALL_LINE, HOST_PACKAGES } from './errors.js';
export { cacheRoot } from './cache.js';
export { runInVm } from './run-in-vm.js';
export { runGuestNodeTest, type GuestNodeTestOptions, type GuestNodeTestResult } from './node-test.js';
export { doctor, type DoctorCheck, type DoctorReport } from './doctor.js';
