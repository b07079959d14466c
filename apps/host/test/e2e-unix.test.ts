/**
 * End to end on the host over the Unix transport: a real vmlink-guest child process and
 * real `vmlink` CLI child processes (built dist/), real files.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import { type AgentProcess, HOST_CLI, runVmlink, spawnVmlink, startAgent } from './helpers.js';

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function waitFor(predicate: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Bytes in the download's .part file so far (0 while there is none). */
async function partialSize(dir: string): Promise<number> {
  const name = (await readdir(dir)).find((n) => n.endsWith('.part'));
  return name ? ((await stat(path.join(dir, name)).catch(() => undefined))?.size ?? 0) : 0;
}

const leftovers = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => n.endsWith('.tmp') || n.endsWith('.part'));

describe('vmlink CLI against vmlink-guest over unix', () => {
  let work: string;
  let root: string;
  let local: string;
  let socketPath: string;
  let agent: AgentProcess;
  const agentArgs = (): string[] => ['--root', root, '--allow-exec', 'uname,echo,sh,vmlink-no-such-command', '--grace-ms', '20000'];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-e2e-'));
    root = path.join(work, 'root');
    local = path.join(work, 'local');
    await mkdir(path.join(root, 'dir'), { recursive: true });
    await mkdir(local);
    await writeFile(path.join(root, 'dir', 'hello.txt'), 'hello\n');
    await writeFile(path.join(work, 'secret.txt'), 'outside the root\n');
    await symlink(path.join(work, 'secret.txt'), path.join(root, 'dir', 'escape'));
    socketPath = path.join(work, 'agent.sock');
    agent = await startAgent(socketPath, agentArgs());
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('--help works on every command', async () => {
    for (const args of [['--help'], ...['ping', 'info', 'ls', 'cp', 'exec', 'bench'].map((c) => [c, '--help'])]) {
      const run = await runVmlink(args);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
      expect(run.stdout).toMatch(/^Usage: vmlink/);
    }
  });

  it('ping and info (text and --json)', async () => {
    const ping = await runVmlink(['ping', agent.uri, '--count', '2']);
    expect(ping.code, ping.stderr).toBe(0);
    expect(ping.stdout).toMatch(/pong from unix:.*seq=2/);
    const info = await runVmlink(['info', agent.uri, '--json']);
    expect(info.code, info.stderr).toBe(0);
    const parsed = JSON.parse(info.stdout) as { hostname: string; agent: { allowExec: string[] }; transports: string[]; cpus: { count: number } };
    expect(parsed.agent.allowExec).toEqual(['uname', 'echo', 'sh', 'vmlink-no-such-command']);
    expect(parsed.transports).toEqual([agent.uri]);
    expect(parsed.cpus.count).toBeGreaterThan(0);
    const text = await runVmlink(['info', agent.uri]);
    expect(text.stdout).toContain(`hostname`);
  });

  it('ls lists a directory and shows the symlink as a symlink', async () => {
    const run = await runVmlink(['ls', agent.uri, '/dir', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const listing = JSON.parse(run.stdout) as { entries: { name: string; type: string }[] };
    expect(listing.entries).toEqual([
      expect.objectContaining({ name: 'escape', type: 'symlink' }),
      expect.objectContaining({ name: 'hello.txt', type: 'file' }),
    ]);
  });

  it('copies 64 MiB up and back down with matching SHA-256 and no leftovers', async () => {
    const original = path.join(local, 'big.bin');
    await writeFile(original, randomBytes(64 * 1024 * 1024));
    const up = await runVmlink(['cp', original, `${agent.uri}:/dir/big.bin`, '--json']);
    expect(up.code, up.stderr).toBe(0);
    const upResult = JSON.parse(up.stdout) as { sha256: string; size: number; verified: boolean };
    const expected = await sha256File(original);
    expect(upResult).toMatchObject({ sha256: expected, size: 64 * 1024 * 1024, verified: true });
    expect(await sha256File(path.join(root, 'dir', 'big.bin'))).toBe(expected);

    const back = path.join(local, 'back.bin');
    const down = await runVmlink(['cp', `${agent.uri}:/dir/big.bin`, back]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('(verified)');
    expect(down.stderr).toBe(''); // not a terminal: no progress bar
    expect(await sha256File(back)).toBe(expected);
    expect(await leftovers(local)).toEqual([]);
    expect(await leftovers(path.join(root, 'dir'))).toEqual([]);
  }, 120_000);

  it('draws a progress bar with rate and ETA on a terminal (a pty from script(1))', async () => {
    const target = path.join(local, 'tty.bin');
    const command = `${process.execPath} ${HOST_CLI} cp ${agent.uri}:/dir/big.bin ${target}`;
    const run = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/download tty\.bin \[#+\] 100% 64\.0 MiB\/64\.0 MiB .*\/s ETA/);
    await rm(target);
  }, 60_000);

  it('copies into a directory target and with the --uri form', async () => {
    const run = await runVmlink(['--uri', agent.uri, 'cp', ':/dir/hello.txt', local]);
    expect(run.code, run.stderr).toBe(0);
    expect((await stat(path.join(local, 'hello.txt'))).size).toBe(6);
  });

  it('exec streams output and exits with the remote exit code', async () => {
    const echo = await runVmlink(['exec', agent.uri, '--', 'echo', 'hi', 'there']);
    expect(echo).toMatchObject({ code: 0, stdout: 'hi there\n' });
    const mixed = await runVmlink(['exec', agent.uri, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(mixed).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    const missing = await runVmlink(['exec', agent.uri, '--', 'vmlink-no-such-command']);
    expect(missing.code).toBe(127); // allowed, but not installed: like a shell
    expect(missing.stderr).toMatch(/ENOENT/);
    const json = await runVmlink(['exec', agent.uri, '--json', '--', 'sh', '-c', 'kill -TERM $$']);
    expect(json.code).toBe(128 + 15);
    expect(JSON.parse(json.stdout)).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
  });

  it('refuses by policy with exit code 77 and a message naming the cause', async () => {
    const cases: [string[], RegExp][] = [
      [['exec', agent.uri, '--', 'cat', '/etc/passwd'], /ERR_VMLINK_EXEC_DENIED/],
      [['ls', agent.uri, '/../..'], /ERR_VMLINK_PATH_ESCAPE/],
      [['cp', `${agent.uri}:/dir/escape`, path.join(local, 'leak')], /ERR_VMLINK_PATH_ESCAPE/],
      [['cp', path.join(local, 'hello.txt'), `${agent.uri}:/../evil.txt`], /ERR_VMLINK_PATH_ESCAPE/],
    ];
    for (const [args, pattern] of cases) {
      const run = await runVmlink(args);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(ExitCode.POLICY);
      expect(run.stderr).toMatch(pattern);
      expect(run.stderr).toContain(agent.uri);
    }
    await expect(stat(path.join(local, 'leak'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(path.join(work, 'evil.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('names missing files, unreachable agents and usage errors with their own codes', async () => {
    const missing = await runVmlink(['cp', `${agent.uri}:/nope.txt`, path.join(local, 'nope')]);
    expect(missing.code).toBe(ExitCode.REMOTE_FILE);
    expect(missing.stderr).toMatch(/ENOENT/);
    const nobody = await runVmlink(['ping', `unix:${path.join(work, 'nobody.sock')}`]);
    expect(nobody.code).toBe(ExitCode.UNREACHABLE);
    expect(nobody.stderr).toContain('nobody.sock');
    const usage = await runVmlink(['cp', 'a', 'b']);
    expect(usage.code).toBe(ExitCode.USAGE);
  });

  it('a FIFO is not a regular file: exit 66 with ERR_VMLINK_NOT_REGULAR_FILE, and the agent serves on', async () => {
    const made = spawnSync('mkfifo', [path.join(root, 'dir', 'pipe')]);
    expect(made.status, String(made.stderr)).toBe(0);
    const run = await runVmlink(['cp', `${agent.uri}:/dir/pipe`, path.join(local, 'pipe')]);
    expect(run.code, run.stderr).toBe(ExitCode.REMOTE_FILE);
    expect(run.stderr).toMatch(/ERR_VMLINK_NOT_REGULAR_FILE/);
    expect(await leftovers(local)).toEqual([]);
    expect((await runVmlink(['ping', agent.uri])).code).toBe(0);
  });

  it('a peer the agent does not allow: exit 77 with the agent\'s reason, not "connection lost"', async () => {
    // We are not uid 4242: this agent turns every connection away with an id-less ERROR.
    const strict = await startAgent(path.join(work, 'strict.sock'), ['--allow-uid', '4242']);
    try {
      const run = await runVmlink(['ping', strict.uri]);
      expect(run.code, run.stderr).toBe(ExitCode.POLICY);
      expect(run.stderr).toMatch(/ERR_VMLINK_PEER_NOT_ALLOWED/);
      expect(run.stderr).toMatch(/--allow-uid 4242/);
      expect(run.stderr).toContain(strict.uri);
    } finally {
      await strict.stop();
    }
  });

  it('bench measures round trips and bulk throughput', async () => {
    const run = await runVmlink(['bench', agent.uri, '--rounds', '20', '--size', '4', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { ping: { rounds: number; perSecond: number }; upload: { bytes: number }; download: { bytes: number } };
    expect(report.ping.rounds).toBe(20);
    expect(report.ping.perSecond).toBeGreaterThan(0);
    expect(report.upload.bytes).toBe(4 * 1024 * 1024);
    expect(report.download.bytes).toBe(4 * 1024 * 1024);
    const table = await runVmlink(['bench', agent.uri, '--rounds', '5', '--size', '1']);
    expect(table.stdout).toMatch(/\| ping round trips\/s \(5\) \| \d+ \|/);
  }, 60_000);

  it('Ctrl-C on a download removes the partial file', async () => {
    await writeFile(path.join(root, 'huge2.bin'), '');
    await truncate(path.join(root, 'huge2.bin'), 2 * 1024 ** 3);
    const copy = spawnVmlink(['cp', `${agent.uri}:/huge2.bin`, path.join(local, 'huge2.bin')]);
    await waitFor(async () => (await partialSize(local)) > 0, 'the download to start');
    copy.child.kill('SIGINT');
    const result = await copy.done;
    expect(result.code).toBe(130);
    expect(await leftovers(local)).toEqual([]);
    await rm(path.join(root, 'huge2.bin'));
  }, 60_000);

  it('a killed agent mid-download: the CLI fails within 2 s with a clear code and no half file', async () => {
    // A sparse 2 GiB file: cheap to make, and long enough to read that we catch it mid-way.
    await truncate(path.join(root, 'huge.bin')).catch(() => undefined);
    await writeFile(path.join(root, 'huge.bin'), '');
    await truncate(path.join(root, 'huge.bin'), 2 * 1024 ** 3);
    const target = path.join(local, 'huge.bin');
    const copy = spawnVmlink(['cp', `${agent.uri}:/huge.bin`, target]);
    await waitFor(async () => (await partialSize(local)) > 0, 'the download to start');
    const killedAt = performance.now();
    await agent.stop('SIGKILL');
    const result = await copy.done;
    const elapsed = performance.now() - killedAt;
    expect(result.code, result.stderr).toBe(ExitCode.CONNECTION_LOST);
    expect(result.stderr).toMatch(/ERR_VMLINK_CONNECTION_LOST|ECONNRESET|EPIPE/);
    expect(elapsed).toBeLessThan(2000);
    expect(await leftovers(local)).toEqual([]);
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 120_000);

  it('the CLI fails cleanly while the agent is down, and works again after a restart', async () => {
    const down = await runVmlink(['ping', agent.uri]);
    expect(down.code).toBe(ExitCode.UNREACHABLE);
    // --wait: a CLI started while the agent is down connects once it is back.
    const waiting = spawnVmlink(['ping', agent.uri, '--wait', '--timeout', '30000']);
    await new Promise((r) => setTimeout(r, 500));
    expect(waiting.child.exitCode).toBeNull();
    agent = await startAgent(socketPath, agentArgs()); // reclaims the stale socket file
    const waited = await waiting.done;
    expect(waited.code, waited.stderr).toBe(0);
    const up = await runVmlink(['ping', agent.uri]);
    expect(up.code, up.stderr).toBe(0);
  }, 60_000);

  it('a killed agent mid-upload: the CLI fails within 2 s, no temp file is left in the agent root', async () => {
    const source = path.join(local, 'sparse-up.bin');
    await writeFile(source, '');
    await truncate(source, 1024 ** 3);
    const copy = spawnVmlink(['cp', source, `${agent.uri}:/dir/up.bin`]);
    await waitFor(async () => (await leftovers(path.join(root, 'dir'))).length > 0, 'the upload to start', 60_000);
    const killedAt = performance.now();
    await agent.stop('SIGKILL');
    const result = await copy.done;
    expect(performance.now() - killedAt).toBeLessThan(2000);
    expect(result.code, result.stderr).toBe(ExitCode.CONNECTION_LOST);
    // The target never appeared; the temp file of the dead agent is swept by the next one.
    await expect(stat(path.join(root, 'dir', 'up.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(source);
    agent = await startAgent(socketPath, agentArgs());
    expect(await leftovers(path.join(root, 'dir'))).toEqual([]);
    expect(agent.log()).toMatch(/removed a stale temp file/);
  }, 120_000);

  it('SIGTERM lets an in-flight copy finish, then the agent exits 0', async () => {
    await writeFile(path.join(root, 'mid.bin'), randomBytes(32 * 1024 * 1024));
    const target = path.join(local, 'mid.bin');
    const copy = spawnVmlink(['cp', `${agent.uri}:/mid.bin`, target]);
    await waitFor(async () => (await partialSize(local)) > 0, 'the download to start');
    const exit = agent.stop('SIGTERM');
    const result = await copy.done;
    expect(result.code, result.stderr).toBe(0);
    expect(await exit).toBe(0);
    expect(agent.log()).toMatch(/shutting down/);
    expect(await sha256File(target)).toBe(await sha256File(path.join(root, 'mid.bin')));
    agent = await startAgent(socketPath, agentArgs());
  }, 120_000);
});
