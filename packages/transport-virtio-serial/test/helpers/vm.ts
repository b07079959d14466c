import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Vm } from '@vmlink/testvm';

/** The repository root: shared into the guest at the same path (packages, node_modules, the addon). */
export const repoRoot = fileURLToPath(new URL('../../../..', import.meta.url));
export const guestDir = fileURLToPath(new URL('../guest', import.meta.url));
/** TCG boots take 15-40 s on a busy 2-core machine. */
export const BOOT_TIMEOUT_MS = 180_000;

export interface GuestServer {
  /** The server's pid in the guest. */
  readonly pid: number;
  /** Everything it printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/** Start test/guest/peer-server.mjs in the guest on port `name`; resolves once it listens. */
export async function startGuestServer(vm: Vm, name: string): Promise<GuestServer> {
  const controller = new AbortController();
  let output = '';
  let onOutput: () => void = () => {};
  const append = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    onOutput();
  };
  const running = vm
    .run('node', [join(guestDir, 'peer-server.mjs'), name], { cwd: guestDir, signal: controller.signal, onStdout: append, onStderr: append })
    .then(
      (result) => `exited ${result.exitCode}`,
      (error: Error) => `stopped: ${error.message}`,
    );
  const pid = await new Promise<number>((resolve, reject) => {
    onOutput = () => {
      const match = /listening \S+ pid (\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    void running.then((how) => reject(new Error(`the guest server ${how} before listening:\n${output}`)));
  });
  return {
    pid,
    output: () => output,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}
