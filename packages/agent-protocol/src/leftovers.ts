import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Files a vmlink process writes before renaming them into place: the agent's upload temp
 * files (`.NAME.vmlink-PID-RANDOM.tmp`) and the CLI's partial downloads (`...part`). The
 * writer's pid in the name tells a later process whether the writer is gone (SIGKILL,
 * power loss), so its leftover may be removed. One scheme for both ends.
 */
export type LeftoverKind = 'tmp' | 'part';

/** `.NAME.vmlink-PID-RANDOM.KIND` next to the target NAME. */
export function leftoverName(name: string, kind: LeftoverKind, pid = process.pid): string {
  return `.${name}.vmlink-${pid}-${randomBytes(6).toString('hex')}.${kind}`;
}

const LEFTOVER_NAME: Readonly<Record<LeftoverKind, RegExp>> = {
  tmp: /^\..+\.vmlink-(\d+)-[0-9a-f]{12}\.tmp$/,
  part: /^\..+\.vmlink-(\d+)-[0-9a-f]{12}\.part$/,
};

/** The writer's pid a leftover's name carries, or undefined when the name is not one of ours. */
export function leftoverWriter(name: string, kind: LeftoverKind): number | undefined {
  const match = LEFTOVER_NAME[kind].exec(name);
  if (!match) return undefined;
  const pid = Number(match[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * The state letter of /proc/PID/stat (R, S, D, Z, X...), read after the last ')' because
 * the command name in parentheses may itself hold spaces and parentheses.
 */
export function processStateOf(statLine: string): string | undefined {
  const close = statLine.lastIndexOf(')');
  return close === -1 ? undefined : statLine.slice(close + 2, close + 3) || undefined;
}

/**
 * True when no live process has `pid`. A zombie (exited, not yet reaped by its parent)
 * counts as gone: it will never write again, yet kill(pid, 0) still succeeds on it.
 * EPERM (someone else's process) is alive; without /proc, kill(pid, 0) is trusted.
 */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  const state = processStateOf(stat);
  return state === 'Z' || state === 'X';
}
