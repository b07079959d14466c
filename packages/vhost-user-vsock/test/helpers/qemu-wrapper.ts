import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { qemuVsockArgs } from '../../src/qemu-args.js';

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * A QEMU "binary" for testvm's `qemuBinary` option that appends the device's arguments
 * to testvm's command line (testvm has no hook for extra QEMU arguments yet). The memfd
 * size follows testvm's own `-m`.
 */
export async function writeQemuWrapper(dir: string, socket: string, memoryMiB: number): Promise<string> {
  const path = join(dir, 'qemu-with-vsock.sh');
  const extra = qemuVsockArgs({ socket, memoryMiB }).map(shellQuote).join(' ');
  await writeFile(path, `#!/bin/sh\nexec qemu-system-x86_64 "$@" ${extra}\n`);
  await chmod(path, 0o755);
  return path;
}
