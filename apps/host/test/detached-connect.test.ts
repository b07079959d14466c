/**
 * The detached commands reach the agent through connectAgent, like the other commands:
 * --wait retries an agent that is not up yet, nothing listening is 69 at once without
 * it, and an agent that dies under an attach is a lost connection (74), in words.
 * Real agent processes over a Unix socket, the real CLI.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, runVmlink, spawnVmlink, startAgent } from './helpers.js';

describe('detached commands over connectAgent', () => {
  let work: string;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-detached-connect-'));
  });

  afterAll(async () => {
    for (const agent of agents) await agent.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('nothing listening: 69 at once; with --wait, ps waits for the agent to come up', async () => {
    const socket = path.join(work, 'late.sock');
    const refused = await runVmlink(['ps', `unix:${socket}`]);
    expect(refused.code).toBe(69);
    // Started before the agent (which takes a second or more to boot): without --wait it
    // would exit 69 like the call above.
    const waiting = spawnVmlink(['ps', `unix:${socket}`, '--wait', '--timeout', '60s']);
    agents.push(await startAgent(socket, ['--allow-exec', 'sleep']));
    const run = await waiting.done;
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ID\s+PID\s+STATE/);
  }, 90_000);

  it('the agent dies under an attach: exit 74, the lost connection said in words', async () => {
    const socket = path.join(work, 'dies.sock');
    const agent = await startAgent(socket, ['--allow-exec', 'sh']);
    agents.push(agent);
    const started = await runVmlink(['exec', '--detach', agent.uri, '--', 'sh', '-c', 'echo attached; exec sleep 300']);
    expect(started.code).toBe(0);
    const id = started.stdout.trim();
    const attach = spawnVmlink(['attach', agent.uri, id, '--from-start']);
    await new Promise<void>((resolve) => {
      let out = '';
      attach.child.stdout?.on('data', (t: string) => {
        out += t;
        if (out.includes('attached')) resolve();
      });
    });
    await agent.stop('SIGKILL');
    const run = await attach.done;
    expect(run.code).toBe(74);
    expect(run.stderr).toMatch(/lost.*\[ERR_VMLINK_CONNECTION_LOST\]/);
  }, 90_000);
});
