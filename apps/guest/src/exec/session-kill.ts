import { readFileSync, readdirSync } from 'node:fs';

/**
 * The process groups of session `sid`, from /proc: a shell on a terminal puts each job
 * in a group of its own (job control), so killing the leader's group alone would leave
 * background jobs running. Fields after the command name's closing parenthesis:
 * state ppid pgrp session.
 */
export function sessionGroups(sid: number, proc = '/proc'): number[] {
  const groups = new Set<number>();
  let entries: string[];
  try {
    entries = readdirSync(proc);
  } catch {
    return [sid];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`${proc}/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[3]) === sid) groups.add(Number(fields[2]));
  }
  groups.add(sid);
  return [...groups];
}

/** `signal` to every process group of session `sid`; a group already gone is fine. */
export function signalSession(sid: number, signal: NodeJS.Signals): void {
  for (const group of sessionGroups(sid)) {
    try {
      process.kill(-group, signal);
    } catch {
      // ESRCH
    }
  }
}
