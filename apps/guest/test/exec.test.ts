/**
 * exec against a real agent process: the PATH hijack of issue 14 (an uploaded `echo` in
 * the root with `.` in the agent's PATH), process-group kills on cancel, disconnect,
 * timeout and shutdown (checked by pid in /proc), and bad params named in the error.
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveBareCommand } from '../src/policy/exec-resolve.js';
import { ExecPolicy } from '../src/policy/exec-policy.js';
import { eventually, isRunning, readExecRecords, rpcClient, startAgent, type AgentProcess } from './helpers.js';

const STDOUT = 1;
const EXIT = 3;
/** Starts a background sleep, prints its pid, and waits for it (the request then never ends by itself). */
const SLEEPER = ['-c', 'sleep 1000 & echo $!; wait'];

/** Starts `sh SLEEPER`, returns the pid of its background sleep once printed. */
async function startSleeper(agent: AgentProcess, args: string[] = SLEEPER) {
  const peer = await rpcClient(agent.socketPath);
  const response = await peer.request('exec', { command: 'sh', args });
  let resolvePid!: (pid: number) => void;
  const sleepPid = new Promise<number>((resolve) => (resolvePid = resolve));
  const records = readExecRecords(response.body!, (record) => {
    if (record.tag === STDOUT) resolvePid(Number(record.data.toString('utf8').split('\n')[0]));
  });
  records.catch(() => undefined);
  return { peer, sleepPid: await sleepPid, records, body: response.body! };
}

describe('exec', () => {
  let work: string;
  let root: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-exec-'));
    root = path.join(work, 'root');
    await import('node:fs/promises').then((fs) => fs.mkdir(root));
    agent = await startAgent(path.join(work, 'agent.sock'), ['--root', root, '--allow-exec', 'echo,sh', '--grace-ms', '500']);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('PATH hijack: with . first in its PATH and cwd = the root, an uploaded `echo` is never run', async () => {
    const hijackRoot = path.join(work, 'hijack');
    await import('node:fs/promises').then((fs) => fs.mkdir(hijackRoot));
    const marker = path.join(work, 'hijacked');
    await writeFile(path.join(hijackRoot, 'echo'), `#!/bin/sh\necho pwned > ${marker}\necho pwned\n`);
    await chmod(path.join(hijackRoot, 'echo'), 0o755);
    const hijacked = await startAgent(path.join(work, 'hijack.sock'), ['--root', hijackRoot, '--allow-exec', 'echo,sh'], {
      cwd: hijackRoot,
      env: { ...process.env, PATH: `.:${hijackRoot}:${process.env['PATH'] ?? ''}` },
    });
    try {
      const peer = await rpcClient(hijacked.socketPath);
      const echo = await peer.request('exec', { command: 'echo', args: ['hello'] });
      const records = await readExecRecords(echo.body!);
      expect(Buffer.concat(records.filter((r) => r.tag === STDOUT).map((r) => r.data)).toString()).toBe('hello\n');
      // The child's own PATH is the fixed one too: a shell's `echo`-by-PATH lookups stay out of the root.
      const envPath = await peer.request('exec', { command: 'sh', args: ['-c', 'echo "$PATH"'] });
      const pathOut = Buffer.concat((await readExecRecords(envPath.body!)).filter((r) => r.tag === STDOUT).map((r) => r.data)).toString();
      expect(pathOut.trim()).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
      peer.destroy();
      await expect(stat(marker)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(hijacked.log()).toMatch(/"allowExec":"\/(usr\/)?bin\/echo,\/(usr\/)?bin\/sh"/);
    } finally {
      await hijacked.stop('SIGKILL');
    }
  }, 60_000);

  it('resolves bare names only through the fixed PATH, never inside the root', async () => {
    const fake = path.join(work, 'bin-in-root');
    await import('node:fs/promises').then((fs) => fs.mkdir(fake));
    await writeFile(path.join(fake, 'echo'), '#!/bin/sh\n');
    await chmod(path.join(fake, 'echo'), 0o755);
    // Even a search path that names the root first does not pick a file under the root.
    const found = await resolveBareCommand('echo', { searchPath: `${fake}:relative/bin:/usr/bin:/bin`, root: fake });
    expect(found).toMatch(/^\/(usr\/)?bin\/echo$/);
    expect(await resolveBareCommand('echo', { searchPath: `${fake}`, root: fake })).toBeUndefined();
    expect(await resolveBareCommand('./echo')).toBeUndefined();
    await expect(ExecPolicy.create([path.join(fake, 'echo')], { root: fake })).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
    const policy = await ExecPolicy.create(['vmlink-no-such-command']);
    await expect(policy.resolve('vmlink-no-such-command')).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('vmlink-no-such-command') });
  });

  it('the request ends when the command exits, even though a background child holds its pipes; the child is killed', async () => {
    const peer = await rpcClient(agent.socketPath);
    const response = await peer.request('exec', { command: 'sh', args: ['-c', 'sleep 1000 & echo $!'] });
    const records = await readExecRecords(response.body!);
    const pid = Number(Buffer.concat(records.filter((r) => r.tag === STDOUT).map((r) => r.data)).toString().trim());
    expect(pid).toBeGreaterThan(0);
    expect(JSON.parse(records.at(-1)!.data.toString())).toEqual({ exitCode: 0, signal: null });
    expect(records.at(-1)!.tag).toBe(EXIT);
    await eventually(async () => !(await isRunning(pid)), `sleep ${pid} to be gone`);
    // The command itself was reaped by the agent: not even a zombie is left.
    await agent.waitForLog(/"msg":"exec".*"pid":\d+/);
    const shPid = agent.lines().filter((l) => l['msg'] === 'exec').at(-1)?.['pid'] as number;
    await eventually(async () => (await readFile(`/proc/${shPid}/stat`).catch(() => undefined)) === undefined, `sh ${shPid} to be reaped`);
    peer.destroy();
  }, 60_000);

  it('a child that left the group (setsid) and holds the pipes cannot keep the request open', async () => {
    const peer = await rpcClient(agent.socketPath);
    const response = await peer.request('exec', { command: 'sh', args: ['-c', 'setsid sleep 1000 & echo $!'] });
    const records = await readExecRecords(response.body!);
    const escaped = Number(Buffer.concat(records.filter((r) => r.tag === STDOUT).map((r) => r.data)).toString().trim());
    try {
      expect(records.at(-1)?.tag).toBe(EXIT);
      expect(JSON.parse(records.at(-1)!.data.toString())).toEqual({ exitCode: 0, signal: null });
    } finally {
      if (escaped > 0) process.kill(escaped, 'SIGKILL'); // out of the agent's reach, by design
    }
    peer.destroy();
  }, 60_000);

  // After its pid a command is either silent (the STOP must reach it without waiting for
  // output) or keeps printing; either way a cancel kills the whole group.
  it.each([
    ['prints nothing more', ['-c', 'sleep 1000 & echo $!; wait']],
    ['keeps printing', ['-c', 'sleep 1000 & echo $!; while :; do sleep 0.1; echo tick; done']],
  ])('cancel (the client stops reading the output) of a command that %s kills its process group', async (_kind, args) => {
    const { peer, sleepPid, records, body } = await startSleeper(agent, args);
    expect(await isRunning(sleepPid)).toBe(true);
    body.destroy(); // RPC sends STOP for the body: the request is cancelled
    await eventually(async () => !(await isRunning(sleepPid)), `sleep ${sleepPid} to be gone after cancel`);
    await records.catch(() => undefined);
    peer.destroy();
  }, 60_000);

  it('a client that disconnects takes its process group with it', async () => {
    const { peer, sleepPid } = await startSleeper(agent);
    expect(await isRunning(sleepPid)).toBe(true);
    peer.destroy();
    await eventually(async () => !(await isRunning(sleepPid)), `sleep ${sleepPid} to be gone after disconnect`);
  }, 60_000);

  it('--exec-timeout kills the group and ends the body with ERR_VMLINK_EXEC_TIMEOUT', async () => {
    const timed = await startAgent(path.join(work, 'timed.sock'), ['--allow-exec', 'sh', '--exec-timeout', '1000']);
    try {
      const { peer, sleepPid, records } = await startSleeper(timed);
      await expect(records).rejects.toMatchObject({ code: 'ERR_VMLINK_EXEC_TIMEOUT', message: expect.stringContaining('1000 ms') });
      await eventually(async () => !(await isRunning(sleepPid)), `sleep ${sleepPid} to be gone after the timeout`);
      // The connection lives on.
      expect(await peer.call('ping')).toMatchObject({ pong: true });
      peer.destroy();
    } finally {
      await timed.stop('SIGKILL');
    }
  }, 60_000);

  it('SIGTERM: the grace ends, the group is killed, the agent exits 0', async () => {
    const doomed = await startAgent(path.join(work, 'doomed.sock'), ['--allow-exec', 'sh', '--grace-ms', '300']);
    const { peer, sleepPid, records } = await startSleeper(doomed);
    expect(await doomed.stop('SIGTERM')).toBe(0);
    await records.catch(() => undefined);
    await eventually(async () => !(await isRunning(sleepPid)), `sleep ${sleepPid} to be gone after shutdown`);
    expect(doomed.log()).toMatch(/grace period over/);
    peer.destroy();
  }, 60_000);

  it('bad args are named in the error', async () => {
    const peer = await rpcClient(agent.socketPath);
    const cases: [unknown, string][] = [
      [42, '42'],
      [['ok', 7], 'args[1]'],
      [['a\u0000b'], 'args[0]'],
      [{ length: 1 }, '{"length":1}'],
    ];
    for (const [args, named] of cases) {
      await expect(peer.call('exec', { command: 'echo', args })).rejects.toMatchObject({
        code: 'ERR_VMLINK_INVALID_PARAMS',
        message: expect.stringContaining(named),
      });
    }
    peer.destroy();
  });

  it('bad sha256 and mode of fs.write are named in the error', async () => {
    const peer = await rpcClient(agent.socketPath);
    await expect(peer.call('fs.write', { path: '/x', size: 1, sha256: 'NOT-HEX' })).rejects.toMatchObject({
      code: 'ERR_VMLINK_INVALID_PARAMS',
      message: expect.stringContaining("'NOT-HEX'"),
    });
    await expect(peer.call('fs.write', { path: '/x', size: 1, sha256: 12 })).rejects.toMatchObject({ message: expect.stringContaining('got 12') });
    await expect(peer.call('fs.write', { path: '/x', size: 1, mode: 0o1777 })).rejects.toMatchObject({
      code: 'ERR_VMLINK_INVALID_PARAMS',
      message: expect.stringContaining('got 1023'),
    });
    await expect(peer.call('fs.write', { path: '/x', size: 1, mode: '0644' })).rejects.toMatchObject({ message: expect.stringContaining("got '0644'") });
    peer.destroy();
    expect(await readFile(path.join(root, 'x')).catch(() => 'absent')).toBe('absent');
  });
});
