/**
 * The slice of @vmlink/testvm the VM demo and the VM test use, loaded at run time. A
 * variable specifier keeps the build of this CLI independent of @vmlink/testvm (a dev
 * tool, not something the CLI needs).
 */
export interface GuestRunResult {
  exitCode: number;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface GuestVm {
  readonly info: { readonly release: string };
  run(cmd: string, args?: readonly string[], options?: { cwd?: string; timeoutMs?: number }): Promise<GuestRunResult>;
  portPath(name: string): string;
  stop(): Promise<void>;
}

export interface TestVmModule {
  startVm(options: { share: string; ports: readonly string[]; memoryMiB?: number; timeoutMs?: number }): Promise<GuestVm>;
}

export async function loadTestVm(): Promise<TestVmModule> {
  const specifier = '@vmlink/testvm';
  return (await import(specifier)) as TestVmModule;
}
