/**
 * What bounds a terminal session's life (issue 12): a PTY exec (`vmlink shell`,
 * `vmlink exec -it`) is interactive, so --exec-timeout, the wall-clock limit of commands on
 * pipes, does not end it; its client's connection does (and its own exit, and the agent's
 * shutdown). A real agent over unix with a 1 s --exec-timeout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, isRunning, readExecRecords, rpcClient, startAgent, type AgentProcess, type ExecRecord } from './helpers.js';

const STDOUT = 1;
const EXIT = 3;
const TIMEOUT_MS = 1000;

function text(records: ExecRecord[]): string {
  return Buffer.concat(records.filter((r) => r.tag === STDOUT).map((r) => r.data)).toString('utf8');
}

describe('exec lifetime: terminal sessions vs --exec-timeout', () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-pty-life-'));
    agent = await startAgent(path.join(work, 'agent.sock'), ['--allow-exec', 'sh', '--exec-timeout', String(TIMEOUT_MS)]);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it(`a terminal session outlives --exec-timeout ${TIMEOUT_MS}: it runs 3x as long and ends with its own exit status`, async () => {
    const peer = await rpcClient(agent.socketPath);
    try {
      const response = await peer.request('exec', { command: 'sh', args: ['-c', 'sleep 3; echo outlived; exit 5'], pty: { cols: 80, rows: 24 } });
      const records = await readExecRecords(response.body!);
      expect(text(records)).toContain('outlived');
      expect(records.at(-1)?.tag).toBe(EXIT);
      expect(JSON.parse(records.at(-1)!.data.toString('utf8'))).toEqual({ exitCode: 5, signal: null });
    } finally {
      peer.destroy();
    }
  }, 60_000);

  it(`a command on pipes is still killed by --exec-timeout ${TIMEOUT_MS} (ERR_VMLINK_EXEC_TIMEOUT)`, async () => {
    const peer = await rpcClient(agent.socketPath);
    try {
      const response = await peer.request('exec', { command: 'sh', args: ['-c', 'echo "pid $$"; exec sleep 1000'] });
      let pid = 0;
      const records = readExecRecords(response.body!, (record) => {
        pid ||= Number(/pid (\d+)/.exec(record.data.toString('utf8'))?.[1] ?? 0);
      });
      await expect(records).rejects.toMatchObject({ code: 'ERR_VMLINK_EXEC_TIMEOUT', message: expect.stringContaining(`${TIMEOUT_MS} ms`) });
      expect(pid).toBeGreaterThan(0);
      await eventually(async () => !(await isRunning(pid)), `sleep ${pid} to be gone after the timeout`);
    } finally {
      peer.destroy();
    }
  }, 60_000);

  it('a terminal session ends when its client disconnects: the command and its background job are killed', async () => {
    const peer = await rpcClient(agent.socketPath);
    const response = await peer.request('exec', {
      command: 'sh',
      args: ['-c', 'sleep 1000 & echo "pids $$ $!"; wait'],
      pty: { cols: 80, rows: 24 },
      stdin: true,
    });
    let seen = '';
    let announced: (pids: number[]) => void = () => undefined;
    const pids = new Promise<number[]>((resolve) => (announced = resolve));
    const records = readExecRecords(response.body!, (record) => {
      seen += record.data.toString('utf8');
      const match = /pids (\d+) (\d+)/.exec(seen);
      if (match) announced([Number(match[1]), Number(match[2])]);
    }).catch(() => undefined);
    const [shell, job] = await pids;
    expect(await isRunning(shell!)).toBe(true);
    expect(await isRunning(job!)).toBe(true);
    peer.destroy();
    await records;
    await eventually(async () => !(await isRunning(shell!)) && !(await isRunning(job!)), `sh ${shell} and sleep ${job} to be gone after the disconnect`);
  }, 60_000);
});
