/**
 * The terminal session's way to the agent is the shared client (connectAgent), as for
 * every other command: a PTY exec through AgentClient.exec (request.pty, input records on
 * stdin), and destroy(), the immediate end a fatal signal needs (close() may wait ~500 ms).
 * A real agent over unix.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeExecInput } from '@vmlink/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAgent } from '../src/rpc-client.js';
import { type AgentProcess, startAgent } from './helpers.js';

/** Input records for a PTY exec's stdin, one per `text`, then an open end until `done`. */
async function* typing(texts: readonly string[], done: Promise<unknown>): AsyncGenerator<Uint8Array> {
  for (const text of texts) yield encodeExecInput({ data: Buffer.from(text) });
  await done;
}

async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '');
  } catch {
    return false;
  }
}

describe('terminal sessions over the shared agent client', () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-pty-client-'));
    agent = await startAgent(path.join(work, 'agent.sock'), ['--aio', 'fs', '--allow-exec', 'sh']);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it("exec with request.pty runs on the guest's terminal: typed input comes back through its line discipline, the size is the one asked for", async () => {
    const client = await connectAgent(agent.uri, { timeoutMs: 30_000 });
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    let shown = '';
    try {
      const exit = await client.exec(
        'sh',
        ['-c', 'stty size; read line; echo "got [$line]"; exit 4'],
        async (_stream, chunk) => {
          shown += Buffer.from(chunk).toString('utf8');
        },
        { stdin: typing(['hello\r'], done), request: { pty: { cols: 91, rows: 17, term: 'xterm' } } },
      );
      expect(exit).toEqual({ exitCode: 4, signal: null });
      // The guest terminal: its own \r\n, and \r typed became \n (ICRNL).
      expect(shown).toContain('17 91\r\n');
      expect(shown).toContain('got [hello]\r\n');
    } finally {
      finish();
      await client.close();
    }
  }, 60_000);

  it('destroy() ends the connection at once: the exec in flight fails with ERR_VMLINK_CONNECTION_LOST, the agent kills the session', async () => {
    const client = await connectAgent(agent.uri, { timeoutMs: 30_000 });
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    let shown = '';
    let announced: (pid: number) => void = () => undefined;
    const pid = new Promise<number>((resolve) => (announced = resolve));
    const exec = client.exec(
      'sh',
      ['-c', 'echo "pid $$"; exec sleep 1000'],
      async (_stream, chunk) => {
        shown += Buffer.from(chunk).toString('utf8');
        const match = /pid (\d+)/.exec(shown);
        if (match) announced(Number(match[1]));
      },
      { stdin: typing([], done), request: { pty: { cols: 80, rows: 24 } } },
    );
    const settled = exec.catch((error: unknown) => error);
    const sleeper = await pid;
    expect(await running(sleeper)).toBe(true);
    client.destroy();
    client.destroy(); // idempotent
    expect(client.closed).toBe(true);
    expect(await settled).toMatchObject({ code: 'ERR_VMLINK_CONNECTION_LOST' });
    finish();
    const deadline = Date.now() + 30_000;
    while (await running(sleeper)) {
      if (Date.now() > deadline) throw new Error(`sleep ${sleeper} still runs after the client's destroy()`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 60_000);
});
