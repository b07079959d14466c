import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepStaleTempFiles, tempNameFor } from '../src/methods/files.js';
import { processStateOf, tempFileWriter, writerAlive } from '../src/fs/stale-temp.js';

describe('processStateOf and tempFileWriter (pure)', () => {
  it('reads the state after the last parenthesis, whatever the command name holds', () => {
    expect(processStateOf('1234 (node) S 1 1234 1234 0 -1')).toBe('S');
    expect(processStateOf('42 (a) Z (b)) Z 1 0 0')).toBe('Z');
    expect(processStateOf('garbage')).toBeUndefined();
  });

  it('finds the writer pid only in names the agent makes', () => {
    expect(tempFileWriter(tempNameFor('x.bin', 4321))).toBe(4321);
    expect(tempFileWriter('.x.vmlink-notapid.tmp')).toBeUndefined();
    expect(tempFileWriter('x.bin')).toBeUndefined();
  });
});

describe('the start-up sweep of stale temp files (real processes and files)', () => {
  let base: string;
  let root: string;
  let outside: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-sweep-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'sub', 'deeper'), { recursive: true });
    await mkdir(outside);
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('treats a writer that is a zombie (exited, not yet reaped) as dead', { timeout: 30_000 }, async () => {
    // The background child exits only once its parent has exec'd `sleep 30` (which never
    // reaps it): a zombie. Exiting at once raced with the shell, which may reap a child
    // that is already done before its exec (seen once on a loaded CI machine: ENOENT).
    const waitForExec = 'p=$$; (while read -r comm < /proc/$p/comm && [ "$comm" != sleep ]; do :; done) &';
    const parent = spawn('sh', ['-c', `${waitForExec} echo $!; exec sleep 30`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(parent.stdout, 'data')) as [Buffer];
      const zombie = Number(line.toString().trim());
      expect(zombie).toBeGreaterThan(0);
      // No event says "has become a zombie": poll its state, bounded.
      const deadline = Date.now() + 20_000;
      let state: string | undefined;
      while (Date.now() < deadline) {
        state = processStateOf(await readFile(`/proc/${zombie}/stat`, 'utf8'));
        if (state === 'Z') break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(state).toBe('Z');
      expect(() => process.kill(zombie, 0)).not.toThrow(); // why kill(0) alone was fooled
      expect(await writerAlive(zombie)).toBe(false);
      expect(await writerAlive(parent.pid as number)).toBe(true);

      const stale = path.join(root, 'sub', 'deeper', tempNameFor('big.iso', zombie));
      const live = path.join(root, 'sub', tempNameFor('other.iso', parent.pid));
      await writeFile(stale, 'partial');
      await writeFile(live, 'partial');
      expect(await sweepStaleTempFiles(root)).toEqual([stale]);
      expect(await readdir(path.join(root, 'sub', 'deeper'))).toEqual([]);
      expect(await readdir(path.join(root, 'sub'))).toContain(path.basename(live));
      await rm(live);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('does not follow a symlinked directory out of the root', async () => {
    const staleOutside = path.join(outside, tempNameFor('victim', 2 ** 22 + 99));
    await writeFile(staleOutside, 'not ours to delete');
    await symlink(outside, path.join(root, 'sub', 'link-out'));
    const staleInside = path.join(root, tempNameFor('mine', 2 ** 22 + 98));
    await writeFile(staleInside, 'partial');
    expect(await sweepStaleTempFiles(root)).toEqual([staleInside]);
    expect(await readdir(outside)).toEqual([path.basename(staleOutside)]);
  });

  it('leaves no fd open', async () => {
    // The sweep's own fds point into the tree it walks or at /proc (the writers' state).
    // Compared as targets, not as a count: the runtime closes fds of its own meanwhile
    // (Node 26 in CI: 25 before, 24 after), which a count read as a change.
    const sweepFds = async (): Promise<string[]> => {
      const targets: string[] = [];
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(path.join('/proc/self/fd', fd)).catch(() => '');
        if (target.startsWith(base) || target.startsWith('/proc/')) targets.push(`${fd} -> ${target}`);
      }
      return targets;
    };
    const before = await sweepFds();
    for (let i = 0; i < 10; i += 1) await sweepStaleTempFiles(root);
    expect(await sweepFds()).toEqual(before);
  });
});
