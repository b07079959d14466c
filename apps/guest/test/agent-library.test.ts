/**
 * The agent run as a library (Agent.start / Agent.shutdown in this process, over a real
 * Unix socket, real processes): shutdown kills detached process groups at once, so open
 * detached.wait and detached.attach calls end with the kill instead of holding the
 * shutdown grace; AgentOptions.allowEnv is exec's --allow-env.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { eventually, isRunning, readExecRecords, rpcClient } from './helpers.js';

const EXIT = 3;

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'vmlink-agent-lib-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The first child of `pid` (the sleep that `sh -c 'sleep N & wait'` started). */
async function firstChild(pid: number): Promise<number> {
  let child = 0;
  await eventually(async () => {
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
    child = Number(children.trim().split(' ')[0] ?? 0) || 0;
    return child > 0;
  }, `a child of ${pid}`);
  return child;
}

describe('Agent as a library', () => {
  it('Agent.shutdown() kills every detached group (grandchildren too) and ends open wait/attach calls at once', async () => {
    const socket = path.join(work, 'detached.sock');
    // A grace far longer than the test's timeout: calls that waited for it would fail the test.
    const agent = await Agent.start({ listen: [`unix:${socket}`], allowExec: ['sh'], limits: { shutdownGraceMs: 600_000 } });
    const peer = await rpcClient(socket);
    try {
      const started = (await peer.call('detached.start', { command: 'sh', args: ['-c', 'sleep 300 & wait'] })) as { id: string; pid: number };
      const sleepPid = await firstChild(started.pid);
      const waiting = peer.call('detached.wait', { id: started.id }, { timeout: 55_000 });
      const attach = await peer.request('detached.attach', { id: started.id });
      const attached = readExecRecords(attach.body!).then(
        () => 'ended',
        (error: unknown) => (error as { code?: string }).code,
      );
      await agent.shutdown();
      await expect(waiting).resolves.toMatchObject({ id: started.id, state: 'exited', signal: 'SIGKILL' });
      expect(await attached).toBeDefined();
      await eventually(async () => !(await isRunning(started.pid)) && !(await isRunning(sleepPid)), 'the detached group to be gone');
    } finally {
      peer.destroy();
      await agent.shutdown();
    }
  }, 60_000);

  it('allowEnv is what exec may set; PATH and LD_* are refused at start as with --allow-env', async () => {
    const socket = path.join(work, 'env.sock');
    await expect(Agent.start({ listen: [`unix:${socket}`], allowEnv: ['LD_PRELOAD'] })).rejects.toMatchObject({ code: 'ERR_VMLINK_USAGE', message: expect.stringContaining('LD_PRELOAD') });
    const agent = await Agent.start({ listen: [`unix:${socket}`], allowExec: ['sh'], allowEnv: ['GREETING'] });
    const peer = await rpcClient(socket);
    try {
      const response = await peer.request('exec', { command: 'sh', args: ['-c', 'printf %s "$GREETING"'], env: { GREETING: 'hello' } });
      const records = await readExecRecords(response.body!);
      expect(Buffer.concat(records.filter((r) => r.tag !== EXIT).map((r) => r.data)).toString()).toBe('hello');
      await expect(peer.call('exec', { command: 'sh', args: ['-c', 'true'], env: { OTHER: 'x' } })).rejects.toMatchObject({
        code: 'ERR_VMLINK_ENV_DENIED',
        message: expect.stringContaining('OTHER'),
      });
    } finally {
      peer.destroy();
      await agent.shutdown();
    }
  }, 60_000);
});
