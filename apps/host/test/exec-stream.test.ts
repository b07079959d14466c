/**
 * Issue 12 §1 (partial): exec streams our stdin and the command's output at the same
 * time, flow-controlled, and Ctrl-C reaches the remote process group. Real CLI, real
 * agent over unix.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, HOST_CLI, runVmlink, startAgent } from './helpers.js';

function interactive(args: readonly string[]) {
  const child = spawn(process.execPath, [HOST_CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout.setEncoding('utf8').on('data', (t: string) => {
    stdout += t;
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  const until = async (text: string): Promise<void> => {
    while (!stdout.includes(text)) {
      if (child.exitCode !== null) throw new Error(`exited before '${text}': ${stdout} ${stderr}`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { child, done, until };
}

describe('vmlink exec: streamed stdin and signals', () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-exec-stream-'));
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-exec', 'cat,sh,sha256sum']);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('stdin and stdout flow at the same time (an echo comes back before stdin ends)', async () => {
    const cat = interactive(['exec', agent.uri, '--', 'cat']);
    cat.child.stdin.write('first line\n');
    await cat.until('first line\n');
    cat.child.stdin.write('second line\n');
    await cat.until('second line\n');
    cat.child.stdin.end();
    const done = await cat.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe('first line\nsecond line\n');
  });

  it('16 MiB through stdin arrive intact (sha256sum in the guest)', async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const sum = interactive(['exec', agent.uri, '--', 'sha256sum']);
    sum.child.stdin.end(data);
    const done = await sum.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout.split(' ')[0]).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('-n sends no stdin; Ctrl-C reaches the remote process group', async () => {
    const none = await runVmlink(['exec', '-n', agent.uri, '--', 'cat']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toBe('');
    const looping = interactive(['exec', agent.uri, '-n', '--', 'sh', '-c', 'trap "echo got INT; exit 3" INT; echo ready; while :; do sleep 0.1; done']);
    await looping.until('ready\n');
    looping.child.kill('SIGINT');
    const done = await looping.done;
    expect(done.stdout).toContain('got INT');
    expect(done.code, done.stderr).toBe(3);
  });
});
