import type { StartVmOptions } from './options.js';
import { startVm } from './start-vm.js';
import type { RunOptions, RunResult } from './vm.js';

/** Boots a guest, runs one command, stops the guest. */
export async function runInVm(
  cmd: string,
  args: readonly string[] = [],
  options: StartVmOptions & { run?: RunOptions } = {},
): Promise<RunResult> {
  const { run: runOptions, ...vmOptions } = options;
  const vm = await startVm(vmOptions);
  try {
    return await vm.run(cmd, args, runOptions);
  } finally {
    await vm.stop();
  }
}
