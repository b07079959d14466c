/**
 * Shared steps of the guest tests of `vmlink cp --resume` for uploads: break an upload off
 * at a known point (the agent killed, or the CLI killed while the agent is frozen), read
 * what the agent kept, damage it. Everything that decides "when" runs in the guest, next
 * to the part file, so no host-side sleep or timing is involved.
 */
import { type ChildProcess } from 'node:child_process';
import type { GuestRunResult, GuestVm } from '../../src/testvm.js';
import type { CliRun } from '../helpers.js';

/**
 * In the guest: waits until `file` holds at least `bytes`, then sends SIG`signal` to the pid
 * in `pidFile` and prints the size it saw. Polls the size (nothing signals "a file grew"
 * to a shell); the file only grows while the agent writes, so the threshold is crossed once.
 * Exit 1 if `deadlineS` passed first.
 */
export function signalWhenFileHolds(vm: GuestVm, options: { file: string; bytes: number; signal: 'KILL' | 'STOP'; pidFile: string; deadlineS: number }): Promise<GuestRunResult> {
  const { file, bytes, signal, pidFile, deadlineS } = options;
  const script = `end=$(( $(date +%s) + ${deadlineS} ))
while [ "$(date +%s)" -lt "$end" ]; do
  s=$(stat -c %s '${file}' 2>/dev/null || echo 0)
  if [ "$s" -ge ${bytes} ]; then kill -${signal} "$(cat '${pidFile}')" && echo "$s" && exit 0; exit 2; fi
  sleep 0.02
done
exit 1`;
  return vm.run('sh', ['-c', script], { timeoutMs: (deadlineS + 60) * 1000 });
}

/**
 * Resolves with the size the guest watcher saw when it fired. The copy may end first only
 * where the interruption itself ends it (the agent killed over vsock: the CLI sees the
 * reset before the watcher's result comes back over the VM's control port); then the
 * watcher must report within `graceMs` (a liveness bound for the failure message, never
 * reached when it fired). Otherwise the copy ending first is a failure, with its output.
 */
export async function interruptedAt(
  watcher: Promise<GuestRunResult>,
  copy: { child: ChildProcess; done: Promise<CliRun> },
  options: { copyMayEndFirst?: boolean; graceMs?: number } = {},
): Promise<number> {
  const first = await Promise.race([watcher.then((run) => ({ watcher: run })), copy.done.then((run) => ({ copy: run }))]);
  let fired: GuestRunResult;
  if ('watcher' in first) {
    fired = first.watcher;
  } else {
    const ended = `the upload ended before the guest watcher reported (code ${first.copy.code}):\n${first.copy.stdout}${first.copy.stderr}`;
    if (!options.copyMayEndFirst) throw new Error(ended);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${ended}\n(and the watcher did not fire)`)), options.graceMs ?? 120_000);
    });
    try {
      fired = await Promise.race([watcher, late]);
    } finally {
      clearTimeout(timer);
    }
  }
  if (fired.exitCode !== 0) throw new Error(`the guest watcher did not fire (exit ${fired.exitCode}): ${fired.stdout}${fired.stderr}`);
  return Number(fired.stdout.trim());
}

/** Size of a guest file, or undefined when it does not exist. */
export async function guestFileSize(vm: GuestVm, file: string): Promise<number | undefined> {
  const result = await vm.run('sh', ['-c', `stat -c %s '${file}' 2>/dev/null || echo none`]);
  const text = result.stdout.trim();
  return text === 'none' ? undefined : Number(text);
}

/** SHA-256 of the first `length` bytes of a guest file, hashed in the guest. */
export async function guestPrefixSha256(vm: GuestVm, file: string, length: number): Promise<string> {
  return (await vm.run('sh', ['-c', `head -c ${length} '${file}' | sha256sum`])).stdout.split(' ')[0] ?? '';
}

/** How many lines of the agent's log contain `needle` (fixed string). */
export async function guestLogCount(vm: GuestVm, log: string, needle: string): Promise<number> {
  return Number((await vm.run('sh', ['-c', `grep -cF '${needle}' '${log}' || true`])).stdout.trim());
}

/**
 * Waits in the guest until the agent's log has more than `count` lines containing
 * `needle` (the agent logs a request once it is done with it, part file included).
 */
export async function waitForGuestLog(vm: GuestVm, log: string, needle: string, count: number, deadlineS = 180): Promise<void> {
  const script = `end=$(( $(date +%s) + ${deadlineS} ))
while [ "$(date +%s)" -lt "$end" ]; do
  [ "$(grep -cF '${needle}' '${log}')" -gt ${count} ] && exit 0
  sleep 0.05
done
exit 1`;
  const waited = await vm.run('sh', ['-c', script], { timeoutMs: (deadlineS + 60) * 1000 });
  if (waited.exitCode !== 0) throw new Error(`the agent did not log a ${count + 1}th '${needle}' within ${deadlineS} s:\n${(await vm.run('tail', ['-n', '30', log])).stdout}`);
}

/** Overwrites one byte of a guest file in place with `value` (0..255). */
export async function setGuestByte(vm: GuestVm, file: string, offset: number, value: number): Promise<void> {
  const octal = value.toString(8).padStart(3, '0');
  const written = await vm.run('sh', ['-c', `printf '\\${octal}' | dd of='${file}' bs=1 seek=${offset} count=1 conv=notrunc 2>&1`]);
  if (written.exitCode !== 0) throw new Error(`could not change byte ${offset} of ${file}: ${written.stdout}${written.stderr}`);
}

/** Names in a guest directory (dot files included) that look like an upload's part. */
export async function guestParts(vm: GuestVm, dir: string): Promise<string[]> {
  return (await vm.run('ls', ['-a', dir])).stdout.split('\n').filter((name) => name.endsWith('.part'));
}
