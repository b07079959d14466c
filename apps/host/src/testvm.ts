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
  readonly timings: { readonly prepareMs: number; readonly bootMs: number };
  /** With `vsock`: the device's hybrid-vsock host socket (`hvsock:<vsockPath>:PORT`). */
  readonly vsockPath?: string | undefined;
  readonly guestCid?: number | undefined;
  run(cmd: string, args?: readonly string[], options?: { cwd?: string; timeoutMs?: number }): Promise<GuestRunResult>;
  portPath(name: string): string;
  stop(): Promise<void>;
}

export interface StartVmOptions {
  share: string;
  ports: readonly string[];
  memoryMiB?: number;
  timeoutMs?: number;
  /** A host<->guest virtio-vsock device (needs @vmlink/vhost-user-vsock): guest CID 3 with `true`. */
  vsock?: boolean | { guestCid: number };
}

export interface TestVmModule {
  startVm(options: StartVmOptions): Promise<GuestVm>;
}

export async function loadTestVm(): Promise<TestVmModule> {
  const specifier = '@vmlink/testvm';
  return (await import(specifier)) as TestVmModule;
}
