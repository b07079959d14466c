/**
 * Plain `vmlink exec` with --env, --cwd and --max-output: parsed (pure), then carried by
 * a real AgentClient (connectAgent over a Unix socket) to a real agent through
 * execCommand, as the CLI runs it. Also: the commands routed before the main parser
 * (shell, ps, wait, kill, attach) are in its help and its "did you mean".
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELP, parseHostArgs } from '../src/args.js';
import type { AgentClient, ExecOptions } from '../src/agent-client.js';
import { execCommand } from '../src/commands/exec.js';
import { COMMAND_NAMES } from '../src/options-spec.js';
import { connectAgent } from '../src/rpc-client.js';
import { type AgentProcess, runVmlink, startAgent } from './helpers.js';

describe('exec --env/--cwd/--max-output parsing (pure)', () => {
  it('collects repeatable --env (NAME alone takes ours), --cwd, --max-output into the request', () => {
    const parsed = parseHostArgs(['exec', 'unix:/a.sock', '--env', 'A=1=2', '--env', 'HOME', '--cwd', '/work', '--max-output', '64K', '--', 'sh'], { HOME: '/home/me' });
    expect(parsed).toMatchObject({ name: 'exec', command: 'sh', request: { env: { A: '1=2', HOME: '/home/me' }, cwd: '/work', maxOutput: { stdout: 65536, stderr: 65536 } } });
    expect(parseHostArgs(['exec', 'unix:/a.sock', '--', 'sh'], {})).not.toHaveProperty('request');
  });

  it.each([
    [['--env', '1X=2'], "--env '1X=2' is not NAME=VALUE"],
    [['--env', 'UNSET_HERE'], '--env UNSET_HERE: not set here'],
    [['--max-output', 'lots'], "--max-output must be a size like 64M or 1048576, got 'lots'"],
    [['--max-output', '0'], "got '0'"],
    [['--cwd', ''], '--cwd needs a directory'],
  ])('%j is a usage error naming the value', (flags, message) => {
    expect(() => parseHostArgs(['exec', 'unix:/a.sock', ...flags, '--', 'sh'], {})).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_USAGE', message: expect.stringContaining(message) }));
  });

  it('--env and --cwd belong to exec and shell, not to other commands', () => {
    expect(() => parseHostArgs(['ls', 'unix:/a.sock', '--cwd', '/x'], {})).toThrow(/'--cwd' belongs to 'exec' and 'shell'/);
  });

  it('shell, ps, wait, kill, attach: commands in the main help, their own help, and did-you-mean', () => {
    for (const name of ['shell', 'ps', 'wait', 'kill', 'attach'] as const) {
      expect(COMMAND_NAMES).toContain(name);
      expect(HELP.main).toMatch(new RegExp(`\\n  ${name} URI`));
      expect(HELP[name]).toMatch(/^Usage: vmlink /);
      expect(parseHostArgs(['help', name], {})).toEqual({ name: 'help', topic: name });
    }
    expect(HELP.main).toContain('exec --detach URI');
    expect(HELP.main).toContain('exec -it URI');
    expect(HELP.exec).toMatch(/--detach/);
    expect(HELP.exec).toMatch(/-t, --tty/);
    expect(HELP.exec).toMatch(/-i, --interactive/);
    expect(HELP.exec).toMatch(/--max-output SIZE/);
    expect(HELP.kill).toMatch(/-s, --signal SIG/);
    expect(() => parseHostArgs(['atach', 'unix:/a.sock'], {})).toThrow(/did you mean 'attach'/);
    expect(() => parseHostArgs(['shel', 'unix:/a.sock'], {})).toThrow(/did you mean 'shell'/);
  });
});

describe('exec with env, cwd and an output cap against a real agent', () => {
  let work: string;
  let agent: AgentProcess;
  let client: AgentClient;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-exec-request-'));
    await mkdir(path.join(work, 'root', 'sub'), { recursive: true });
    agent = await startAgent(path.join(work, 'agent.sock'), ['--root', path.join(work, 'root'), '--allow-exec', 'sh', '--allow-env', 'GREETING']);
    client = await connectAgent(agent.uri, { timeoutMs: 20_000 });
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  async function run(request: ExecOptions['request'], script: string) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    stderr.resume();
    const status = await execCommand(client, 'sh', ['-c', script], { json: false, timeoutMs: 20_000, wait: false, transports: [] }, { stdout, stderr }, { request });
    return { status, out: Buffer.concat(chunks).toString('utf8') };
  }

  it('env reaches the command, cwd is under the root, maxOutput cuts the stream', async () => {
    expect(await run({ env: { GREETING: 'hi' }, cwd: '/sub' }, 'printf "%s %s" "$GREETING" "$(basename "$PWD")"')).toEqual({ status: 0, out: 'hi sub' });
    const capped = await run({ maxOutput: { stdout: 5, stderr: 5 } }, 'printf 0123456789; exit 4');
    expect(capped.out).toBe('01234');
  }, 60_000);

  it('a name the agent does not allow is ERR_VMLINK_ENV_DENIED; a cwd outside the root is refused', async () => {
    await expect(run({ env: { OTHER: 'x' } }, 'true')).rejects.toMatchObject({ code: 'ERR_VMLINK_ENV_DENIED', message: expect.stringContaining('OTHER') });
    await expect(run({ cwd: '/../..' }, 'true')).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_VMLINK_PATH_ESCAPE|ENOENT$/) });
  }, 60_000);

  it('the vmlink CLI carries --env, --cwd and --max-output to the agent', async () => {
    const run = await runVmlink(['exec', agent.uri, '--env', 'GREETING=cli', '--cwd', '/sub', '--max-output', '7', '--', 'sh', '-c', 'printf "%s %s!!!!" "$GREETING" "$(basename "$PWD")"'], { timeoutMs: 30_000 });
    expect(run.stdout).toBe('cli sub');
    expect(run.code).toBe(0);
    // Cut output does not pass for the whole: a note on stderr, and `truncated` in --json.
    expect(run.stderr).toContain('vmlink exec: stdout cut at 7 bytes');
    const json = await runVmlink(['exec', agent.uri, '--json', '--max-output', '3', '--', 'sh', '-c', 'printf 12345; printf ab >&2'], { timeoutMs: 30_000 });
    expect(JSON.parse(json.stdout)).toMatchObject({ exitCode: 0, stdout: '123', stderr: 'ab', truncated: { stdout: 3 } });
    expect(JSON.parse(json.stdout).truncated).not.toHaveProperty('stderr');
    const whole = await runVmlink(['exec', agent.uri, '--max-output', '7', '--', 'sh', '-c', 'printf 1234567'], { timeoutMs: 30_000 });
    expect(whole.stderr).not.toContain('cut at');
  }, 60_000);
});
