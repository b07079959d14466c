/**
 * exec's options against a real agent process over unix (issue 12 §1): output caps per
 * stream (the client's and the agent's ceiling, marked in the exit record, the command
 * never left blocked), `env` limited to --allow-env, `cwd` resolved beneath --root, and
 * PTY execs: the same policy, and a client that never reads their output cannot make the
 * agent buffer it.
 */
import { readFile, readdir, realpath, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeExecInput } from '@vmlink/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, readExecRecords, rpcClient, rssKiB, startAgent, type AgentProcess, type ExecRecord } from './helpers.js';

const STDOUT = 1;
const STDERR = 2;
const EXIT = 3;

function streamText(records: ExecRecord[], tag: number): Buffer {
  return Buffer.concat(records.filter((r) => r.tag === tag).map((r) => r.data));
}

function exitOf(records: ExecRecord[]): Record<string, unknown> {
  const last = records.at(-1);
  expect(last?.tag).toBe(EXIT);
  return JSON.parse(last!.data.toString('utf8')) as Record<string, unknown>;
}

async function run(agent: AgentProcess, params: Record<string, unknown>): Promise<ExecRecord[]> {
  const peer = await rpcClient(agent.socketPath);
  try {
    const response = await peer.request('exec', params);
    return await readExecRecords(response.body!);
  } finally {
    peer.destroy();
  }
}

/** Pids whose command line is exactly `argv`. */
async function pidsRunning(argv: readonly string[]): Promise<number[]> {
  const wanted = `${argv.join('\0')}\0`;
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline === wanted) found.push(Number(entry));
  }
  return found;
}

async function bytesWritten(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/wchar:\s+(\d+)/.exec(io)?.[1]);
}

describe('exec options: caps, env, cwd, pty', () => {
  let work: string;
  let root: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-exec-options-'));
    root = path.join(work, 'root');
    await mkdir(path.join(root, 'sub'), { recursive: true });
    await mkdir(path.join(work, 'outside'));
    await symlink(path.join(work, 'outside'), path.join(root, 'out'));
    await writeFile(path.join(root, 'file'), 'x');
    agent = await startAgent(path.join(work, 'agent.sock'), ['--aio', 'fs', '--root', root, '--allow-exec', 'sh,yes,head', '--allow-env', 'GREETING,LANG']);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('maxOutput: stdout cut at the requested bytes (the writer sees its output closed, as under head -c), stderr goes on, the exit record says so', async () => {
    const records = await run(agent, { command: 'sh', args: ['-c', 'head -c 100000 /dev/zero; echo done >&2'], maxOutput: { stdout: 1000 } });
    expect(streamText(records, STDOUT).length).toBe(1000);
    expect(streamText(records, STDERR).toString()).toBe('done\n');
    expect(exitOf(records)).toEqual({ exitCode: 0, signal: null, truncated: { stdout: 1000 } });
  }, 60_000);

  it('output that fits its cap exactly is not marked truncated', async () => {
    const records = await run(agent, { command: 'sh', args: ['-c', 'printf 12345'], maxOutput: { stdout: 5, stderr: 0 } });
    expect(streamText(records, STDOUT).toString()).toBe('12345');
    expect(exitOf(records)).toEqual({ exitCode: 0, signal: null });
  }, 60_000);

  it("the agent's --exec-max-output is the ceiling whatever the client asks; an endless writer ends (its output closed), it does not hang", async () => {
    const capped = await startAgent(path.join(work, 'capped.sock'), ['--aio', 'fs', '--allow-exec', 'yes', '--exec-max-output', '4K']);
    try {
      const records = await run(capped, { command: 'yes', maxOutput: { stdout: 1024 * 1024 } });
      expect(streamText(records, STDOUT).length).toBe(4096);
      // Node's child pipes are socketpairs: yes gets ECONNRESET (exit 1) or SIGPIPE; either way it ends.
      const exit = exitOf(records);
      expect(exit['truncated']).toEqual({ stdout: 4096 });
      expect(exit['signal'] === 'SIGPIPE' || exit['exitCode'] === 1).toBe(true);
    } finally {
      await capped.stop('SIGKILL');
    }
  }, 120_000);

  it('a PTY exec at its cap: the endless writer is killed, the output stops at the cap', async () => {
    const records = await run(agent, { command: 'yes', pty: { cols: 80, rows: 24 }, maxOutput: { stdout: 10_000 } });
    expect(streamText(records, STDOUT).length).toBe(10_000);
    expect(exitOf(records)).toEqual({ exitCode: null, signal: 'SIGKILL', truncated: { stdout: 10_000 } });
  }, 60_000);

  it('bad maxOutput values are named', async () => {
    const peer = await rpcClient(agent.socketPath);
    for (const [maxOutput, named] of [
      [{ stdout: -1 }, 'maxOutput.stdout'],
      [{ stdout: 1.5 }, '1.5'],
      [{ stdin: 1 }, "'stdin'"],
      ['lots', "'lots'"],
    ] as const) {
      await expect(peer.call('exec', { command: 'sh', args: ['-c', 'true'], maxOutput })).rejects.toMatchObject({
        code: 'ERR_VMLINK_INVALID_PARAMS',
        message: expect.stringContaining(named),
      });
    }
    peer.destroy();
  });

  it('env: allowed names reach the command; a refused name is ERR_VMLINK_ENV_DENIED naming it; PATH stays fixed', async () => {
    const records = await run(agent, { command: 'sh', args: ['-c', 'echo "$GREETING|$LANG|$PATH"'], env: { GREETING: 'hi there', LANG: 'C.UTF-8' } });
    expect(streamText(records, STDOUT).toString()).toBe('hi there|C.UTF-8|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
    const peer = await rpcClient(agent.socketPath);
    await expect(peer.call('exec', { command: 'sh', args: ['-c', 'true'], env: { GREETING: 'ok', SECRET: 'x' } })).rejects.toMatchObject({
      code: 'ERR_VMLINK_ENV_DENIED',
      message: expect.stringContaining("'SECRET' refused by policy (allowed: GREETING, LANG)"),
    });
    await expect(peer.call('exec', { command: 'sh', env: { PATH: '/tmp' } })).rejects.toMatchObject({ code: 'ERR_VMLINK_ENV_DENIED', message: expect.stringContaining("'PATH'") });
    await expect(peer.call('exec', { command: 'sh', env: { GREETING: 'a\u0000b' } })).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining('GREETING') });
    await expect(peer.call('exec', { command: 'sh', env: ['GREETING=1'] })).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
    peer.destroy();
  }, 60_000);

  it('--allow-env refuses PATH and LD_* at start-up (exit 2), and names that are not names', async () => {
    for (const value of ['PATH', 'LD_PRELOAD', 'A-B']) {
      const bad = await startAgent(path.join(work, 'bad.sock'), ['--allow-env', value], { noWait: true });
      expect(await bad.exited).toBe(2);
      expect(bad.log()).toContain(value);
    }
  }, 120_000);

  it('cwd: a directory under the root; .. above it, a symlink leading out, a file, and no --root are refused', async () => {
    const records = await run(agent, { command: 'sh', args: ['-c', 'pwd -P'], cwd: '/sub' });
    expect(streamText(records, STDOUT).toString().trim()).toBe(path.join(await import('node:fs/promises').then((fs) => fs.realpath(root)), 'sub'));
    const peer = await rpcClient(agent.socketPath);
    await expect(peer.call('exec', { command: 'sh', cwd: '/../..' })).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE', message: expect.stringContaining('/../..') });
    await expect(peer.call('exec', { command: 'sh', cwd: '/out' })).rejects.toMatchObject({ code: 'ERR_VMLINK_PATH_ESCAPE' });
    await expect(peer.call('exec', { command: 'sh', cwd: '/file' })).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(peer.call('exec', { command: 'sh', cwd: 7 })).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PATH' });
    peer.destroy();
    const rootless = await startAgent(path.join(work, 'rootless.sock'), ['--aio', 'fs', '--allow-exec', 'sh']);
    try {
      const other = await rpcClient(rootless.socketPath);
      await expect(other.call('exec', { command: 'sh', cwd: '/' })).rejects.toMatchObject({ code: 'ERR_VMLINK_FS_DISABLED' });
      other.destroy();
    } finally {
      await rootless.stop('SIGKILL');
    }
  }, 120_000);

  it('a quick command with a cwd ends with its output, every time (its pipes are read before Node drains them)', async () => {
    // The cwd's directory fd used to be closed (awaited) between the spawn and the reading of
    // the pipes: a command done by then had its output drained by Node and the exec hung.
    const expected = path.join(await realpath(root), 'sub');
    for (let i = 0; i < 40; i += 1) {
      const records = await run(agent, { command: 'sh', args: ['-c', 'pwd -P'], cwd: '/sub' });
      expect(streamText(records, STDOUT).toString().trim(), `run ${i}`).toBe(expected);
    }
  }, 120_000);

  it('a PTY exec goes through the same policy: a command not allowed is refused with the same code; bad pty params are named', async () => {
    const peer = await rpcClient(agent.socketPath);
    await expect(peer.call('exec', { command: 'cat', pty: { cols: 80, rows: 24 } })).rejects.toMatchObject({ code: 'ERR_VMLINK_EXEC_DENIED', message: expect.stringContaining("'cat'") });
    await expect(peer.call('exec', { command: 'sh', pty: { cols: 0, rows: 24 } })).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining('pty.cols') });
    await expect(peer.call('exec', { command: 'sh', pty: { cols: 80, rows: 24, term: 'x; rm -rf /' } })).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining('pty.term') });
    peer.destroy();
  });

  it('typing into a PTY exec whose command never reads: the input stalls at the terminal, the agent stays bounded (RSS) and serves others', async () => {
    const before = await rssKiB(agent.child.pid!);
    const peer = await rpcClient(agent.socketPath);
    // Raw mode: a full terminal makes its writer wait (a canonical one would drop the
    // overflow of a line, as a console does, and never push back).
    const response = await peer.request('exec', { command: 'sh', args: ['-c', 'stty raw -echo; echo ready; exec sleep 1000'], pty: { cols: 80, rows: 24 } });
    const { id } = response.result as { id: string };
    let resolveReady!: () => void;
    const ready = new Promise<void>((resolve) => (resolveReady = resolve));
    const output = readExecRecords(response.body!, (r) => {
      if (r.tag === STDOUT && r.data.toString().includes('ready')) resolveReady();
    }).catch(() => []);
    await ready;
    const chunk = encodeExecInput({ data: Buffer.alloc(64 * 1024, 0x61) });
    const total = 512; // 32 MiB of typing
    let pulled = 0;
    async function* typing(): AsyncGenerator<Uint8Array> {
      for (; pulled < total; pulled += 1) yield chunk;
    }
    const feeding = peer.call('exec.stdin', { id }, { body: typing() }).catch((error: unknown) => error);
    let last = -1;
    await eventually(async () => {
      const stalled = pulled === last;
      last = pulled;
      if (!stalled) await new Promise((r) => setTimeout(r, 500));
      return stalled;
    }, 'the typing to stall');
    expect(pulled).toBeLessThan(total / 4);
    const other = await rpcClient(agent.socketPath);
    for (let i = 0; i < 20; i += 1) expect(await other.call('ping')).toMatchObject({ pong: true });
    other.destroy();
    expect((await rssKiB(agent.child.pid!)) - before).toBeLessThan(24 * 1024);
    response.body!.destroy(); // cancel: the command goes, the stalled input with it
    peer.destroy();
    await feeding;
    await output;
  }, 60_000);

  it('a client that never reads a PTY exec: the writer blocks, the agent holds a bounded amount (RSS) and serves others; cancel kills it', async () => {
    const warm = await run(agent, { command: 'sh', args: ['-c', 'echo warm'], pty: { cols: 80, rows: 24 } });
    expect(streamText(warm, STDOUT).toString()).toContain('warm');
    const before = await rssKiB(agent.child.pid!);
    const producer = ['head', '-c', '200000007', '/dev/zero'];
    const peer = await rpcClient(agent.socketPath);
    const response = await peer.request('exec', { command: 'head', args: producer.slice(1), pty: { cols: 80, rows: 24 } });
    const body = response.body!;
    body.pause(); // never read
    let pid = 0;
    await eventually(async () => ((pid = (await pidsRunning(producer))[0] ?? 0) > 0), 'the producer to start');
    // The producer stalls once the terminal, the agent's one chunk and the RPC window are full.
    let last = -1;
    await eventually(async () => {
      const now = await bytesWritten(pid);
      const stalled = now === last;
      last = now;
      if (!stalled) await new Promise((r) => setTimeout(r, 500));
      return stalled;
    }, 'the producer to stall');
    expect(last).toBeLessThan(32 * 1024 * 1024);
    // Others are served meanwhile.
    const other = await rpcClient(agent.socketPath);
    for (let i = 0; i < 20; i += 1) expect(await other.call('ping')).toMatchObject({ pong: true });
    other.destroy();
    const grown = (await rssKiB(agent.child.pid!)) - before;
    expect(grown).toBeLessThan(24 * 1024);
    body.destroy(); // cancel: the group is killed
    await eventually(async () => (await pidsRunning(producer)).length === 0, 'the producer to be killed');
    peer.destroy();
  }, 60_000);
});
