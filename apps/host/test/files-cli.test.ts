/**
 * Issue 12 §3 through the real CLI and a real agent over unix: stat, mkdir, rm, mv, chmod,
 * cp -r both ways (modes, mtimes, symlinks skipped), cp --resume (after a SIGKILLed
 * download, after Ctrl-C, a prefix that does not match), refusals with codes and words,
 * and paths named as the client spelled them, never the agent's real root.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import { resumeNameFor } from '../src/commands/cp.js';
import { type AgentProcess, runVmlink, spawnVmlink, startAgent } from './helpers.js';

const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function waitFor(predicate: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('vmlink file management against vmlink-guest over unix', () => {
  let work: string;
  let root: string;
  let local: string;
  let outside: string;
  let agent: AgentProcess;
  const when = Date.UTC(2021, 5, 6, 7, 8, 9);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-files-cli-'));
    root = path.join(work, 'root');
    local = path.join(work, 'local');
    outside = path.join(work, 'outside');
    await mkdir(path.join(root, 'tree', 'sub'), { recursive: true });
    await mkdir(local);
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret.txt'), 'secret');
    await writeFile(path.join(root, 'tree', 'a.txt'), 'alpha\n');
    await writeFile(path.join(root, 'tree', 'sub', 'b.bin'), randomBytes(200_000));
    await chmod(path.join(root, 'tree', 'sub', 'b.bin'), 0o640);
    await chmod(path.join(root, 'tree', 'sub'), 0o750);
    await symlink('a.txt', path.join(root, 'tree', 'link'));
    await utimes(path.join(root, 'tree', 'a.txt'), when / 1000, when / 1000);
    await utimes(path.join(root, 'tree', 'sub'), when / 1000, when / 1000);
    await symlink(outside, path.join(root, 'out'));
    agent = await startAgent(path.join(work, 'agent.sock'), ['--root', root]);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('mkdir -p, stat, chmod, mv into a directory, rm and rm -r', async () => {
    const uri = agent.uri;
    const made = await runVmlink(['mkdir', uri, '/new/deep', '-p', '--mode', '750']);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toBe('created /new/deep\n');
    const again = await runVmlink(['mkdir', uri, '/new/deep']);
    expect(again.code).toBe(ExitCode.REMOTE_FILE);
    expect(again.stderr).toMatch(/EEXIST.*'\/new\/deep'/);
    await writeFile(path.join(root, 'new', 'f.txt'), 'f');
    const ch = await runVmlink(['chmod', uri, '600', '/new/f.txt']);
    expect(ch.code, ch.stderr).toBe(0);
    expect((await stat(path.join(root, 'new', 'f.txt'))).mode & 0o777).toBe(0o600);
    const st = await runVmlink(['stat', uri, '/new/f.txt', '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ path: '/new/f.txt', type: 'file', size: 1, mode: 0o600, nlink: 1 });
    const text = await runVmlink(['stat', uri, '/new/f.txt']);
    expect(text.stdout).toMatch(/mode\s+0600/);
    const mv = await runVmlink(['mv', uri, '/new/f.txt', '/new/deep']);
    expect(mv.code, mv.stderr).toBe(0);
    expect(mv.stdout).toBe('/new/f.txt -> /new/deep/f.txt\n');
    const rmDir = await runVmlink(['rm', uri, '/new']);
    expect(rmDir.code).toBe(ExitCode.REMOTE_FILE);
    expect(rmDir.stderr).toMatch(/'\/new' is a directory.*\[EISDIR\]/);
    const rmTree = await runVmlink(['rm', '-r', uri, '/new']);
    expect(rmTree.code, rmTree.stderr).toBe(0);
    expect(rmTree.stdout).toBe('removed /new (3 entries)\n');
    expect(await readdir(root)).not.toContain('new');
  });

  it('refusals: the root, escapes, special bits; codes, words, client paths only', async () => {
    const uri = agent.uri;
    for (const args of [['rm', '-r', uri, '/'], ['rm', '-r', uri, '/tree/..'], ['mv', uri, '/', '/x']]) {
      const run = await runVmlink(args);
      expect(run.code, args.join(' ')).toBe(ExitCode.POLICY);
      expect(run.stderr).toMatch(/the root directory the agent serves cannot be removed or moved: .*\[ERR_VMLINK_ROOT_PROTECTED\]/);
    }
    for (const args of [['rm', uri, '/../x'], ['mv', uri, '/tree/a.txt', '/out/stolen.txt'], ['chmod', uri, '666', '/out/secret.txt'], ['mkdir', uri, '/out/evil']]) {
      const run = await runVmlink(args);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(ExitCode.POLICY);
      expect(run.stderr).toMatch(/that path leads outside the directory the agent serves: .*\[ERR_VMLINK_PATH_ESCAPE\]/);
      expect(run.stderr).not.toContain(root);
      expect(run.stderr).not.toContain(outside);
    }
    const setuid = await runVmlink(['chmod', uri, '4755', '/tree/a.txt']);
    expect(setuid.code).toBe(ExitCode.USAGE);
    expect(setuid.stderr).toMatch(/no setuid, setgid or sticky bits.*\[ERR_VMLINK_INVALID_PARAMS\]/);
    const missing = await runVmlink(['stat', uri, '/nope/x']);
    expect(missing.code).toBe(ExitCode.REMOTE_FILE);
    expect(missing.stderr).toContain("'/nope/x'");
    expect(missing.stderr).not.toContain(root);
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('secret');
    expect((await readdir(outside)).sort()).toEqual(['secret.txt']);
  });

  it('usage errors say what was meant and point to --help', async () => {
    const typo = await runVmlink(['mkdri', agent.uri, '/x']);
    expect(typo.code).toBe(ExitCode.USAGE);
    expect(typo.stderr).toBe("vmlink: unknown command 'mkdri' (did you mean 'mkdir'?); commands: ping, info, ls, stat, cp, mkdir, rm, mv, chmod, exec, shell, ps, wait, kill, attach, forward, wait-port, bench\nTry 'vmlink --help'.\n");
    const owner = await runVmlink(['ls', agent.uri, '/', '-r']);
    expect(owner.stderr).toBe("vmlink: option '-r' belongs to 'cp' and 'rm', it is not an option of 'ls'\nTry 'vmlink --help' or 'vmlink ls --help'.\n");
    const version = await runVmlink(['-V']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('cp -r down and up: the tree, its modes and mtimes, symlinks skipped and counted', async () => {
    const down = await runVmlink(['cp', '-r', `${agent.uri}:/tree`, local]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/: 2 files, 2 directories, .* each SHA-256 verified; skipped 1 symlink\(s\)\/special file\(s\): \/tree\/link/);
    const copy = path.join(local, 'tree');
    expect(await readFile(path.join(copy, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(sha(await readFile(path.join(copy, 'sub', 'b.bin')))).toBe(sha(await readFile(path.join(root, 'tree', 'sub', 'b.bin'))));
    expect((await stat(path.join(copy, 'sub', 'b.bin'))).mode & 0o777).toBe(0o640);
    expect((await stat(path.join(copy, 'sub'))).mode & 0o777).toBe(0o750);
    expect((await stat(path.join(copy, 'a.txt'))).mtimeMs).toBe(when);
    expect((await stat(path.join(copy, 'sub'))).mtimeMs).toBe(when);
    await expect(lstat(path.join(copy, 'link'))).rejects.toMatchObject({ code: 'ENOENT' });

    const up = await runVmlink(['cp', '-r', copy, `${agent.uri}:/uploaded`, '--json']);
    expect(up.code, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout)).toMatchObject({ files: 2, directories: 2, skipped: [] });
    const back = path.join(root, 'uploaded');
    expect(await readFile(path.join(back, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect((await stat(path.join(back, 'sub', 'b.bin'))).mode & 0o777).toBe(0o640);
    expect((await stat(path.join(back, 'sub'))).mode & 0o777).toBe(0o750);
    expect((await stat(path.join(back, 'a.txt'))).mtimeMs).toBe(when);
    expect((await stat(path.join(back, 'sub'))).mtimeMs).toBe(when);
    // Into an existing directory, like cp -r.
    const into = await runVmlink(['cp', '-r', copy, `${agent.uri}:/uploaded`]);
    expect(into.code, into.stderr).toBe(0);
    expect((await readdir(back)).sort()).toEqual(['a.txt', 'sub', 'tree']);
  });

  it('cp --resume: picks up after a SIGKILLed download and after Ctrl-C, checking the prefix', async () => {
    const data = randomBytes(48 * 1024 * 1024);
    await writeFile(path.join(root, 'big.bin'), data);
    const dir = path.join(local, 'resume');
    await mkdir(dir);
    const target = path.join(dir, 'big.bin');
    const partBytes = async (): Promise<number> => {
      let total = 0;
      for (const name of await readdir(dir)) if (name.endsWith('.part')) total += (await stat(path.join(dir, name))).size;
      return total;
    };
    // 1. A plain download killed outright leaves a .part of a dead vmlink: --resume adopts it.
    const killed = spawnVmlink(['cp', `${agent.uri}:/big.bin`, target]);
    await waitFor(async () => (await partBytes()) > 2 * 1024 * 1024, 'a partial download');
    killed.child.kill('SIGKILL');
    await killed.done;
    const resumed = await runVmlink(['cp', '--resume', `${agent.uri}:/big.bin`, target, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const outcome = JSON.parse(resumed.stdout) as { resumedFrom?: number; sha256: string; size: number };
    expect(outcome.resumedFrom).toBeGreaterThan(0);
    expect(outcome).toMatchObject({ size: data.length, sha256: sha(data) });
    expect(sha(await readFile(target))).toBe(sha(data));
    expect((await readdir(dir)).filter((n) => n.endsWith('.part'))).toEqual([]);

    // 2. --resume interrupted by Ctrl-C keeps what it has; the next --resume continues it.
    await rm(target);
    const interrupted = spawnVmlink(['cp', '--resume', `${agent.uri}:/big.bin`, target]);
    await waitFor(async () => (await partBytes()) > 2 * 1024 * 1024, 'a partial download');
    interrupted.child.kill('SIGINT');
    expect((await interrupted.done).code).toBe(130);
    const kept = (await stat(path.join(dir, resumeNameFor('big.bin')))).size;
    expect(kept).toBeGreaterThan(0);
    const text = await runVmlink(['cp', '--resume', `${agent.uri}:/big.bin`, target]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/48\.0 MiB \(50331648 bytes\), sha256 [0-9a-f]{64} \(verified\) \(resumed after .* already here\)/);
    expect(sha(await readFile(target))).toBe(sha(data));

    // 3. A partial that is not the start of that file: checked, discarded, copied whole.
    await rm(target);
    await writeFile(path.join(dir, resumeNameFor('big.bin')), randomBytes(1024 * 1024));
    const wrong = await runVmlink(['cp', '--resume', `${agent.uri}:/big.bin`, target, '--json']);
    expect(wrong.code, wrong.stderr).toBe(0);
    expect((JSON.parse(wrong.stdout) as { resumedFrom?: number }).resumedFrom).toBeUndefined();
    expect(sha(await readFile(target))).toBe(sha(data));
    expect(agent.log()).toMatch(/req fs\.hash/);
  });
});
