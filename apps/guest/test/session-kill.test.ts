/**
 * sessionGroups reads /proc/PID/stat to find every process group of a terminal session
 * (a shell's jobs). Pure parsing against a stand-in /proc directory (named as such: real
 * sessions are covered by the PTY tests), including a command name holding ") (".
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionGroups } from '../src/exec/session-kill.js';

describe('sessionGroups (stand-in /proc)', () => {
  let proc: string;

  beforeAll(async () => {
    proc = await mkdtemp(path.join(tmpdir(), 'vmlink-fake-proc-'));
    const stat = async (pid: number, comm: string, pgrp: number, session: number): Promise<void> => {
      await mkdir(path.join(proc, String(pid)));
      await writeFile(path.join(proc, String(pid), 'stat'), `${pid} (${comm}) S 1 ${pgrp} ${session} 34816 0 -1 4194560 0\n`);
    };
    await stat(100, 'sh', 100, 100); // the session leader
    await stat(101, 'sleep', 101, 100); // a background job: its own group
    await stat(102, 'evil) S 1 999 999 (x', 102, 100); // a name that imitates other fields
    await stat(200, 'other', 200, 200); // another session
    await mkdir(path.join(proc, 'self'));
    await mkdir(path.join(proc, '300')); // gone meanwhile: no stat
  });

  afterAll(async () => {
    await rm(proc, { recursive: true, force: true });
  });

  it('finds every group of the session, whatever the command names hold; skips what vanished', () => {
    expect(sessionGroups(100, proc).sort((a, b) => a - b)).toEqual([100, 101, 102]);
    expect(sessionGroups(200, proc)).toEqual([200]);
  });

  it('the leader itself when nothing else is found, and when /proc cannot be read', () => {
    expect(sessionGroups(555, proc)).toEqual([555]);
    expect(sessionGroups(555, path.join(proc, 'missing'))).toEqual([555]);
  });
});
