/**
 * `npm run demo`: a vmlink-guest agent on a Unix socket in a temp dir, driven by the real
 * `vmlink` CLI. Exits 0 only if every step did what it should.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GUEST_CLI, Story, bold, dim, prefixLines, waitForExit } from './demo-kit.js';
import { runAgentStory } from './demo-steps.js';

async function main(): Promise<number> {
  const story = new Story();
  const workDir = await mkdtemp(path.join(tmpdir(), 'vmlink-demo-'));
  const root = path.join(workDir, 'agent-root');
  await mkdir(path.join(root, 'demo'), { recursive: true });
  const socketPath = path.join(workDir, 'agent.sock');
  const uri = `unix:${socketPath}`;

  process.stdout.write(`${bold('vmlink demo')}: a guest agent and the host CLI over a Unix socket\n`);
  process.stdout.write(dim(`work dir ${workDir}\n`));
  story.heading('start the agent');
  const agentArgs = ['--listen', uri, '--root', root, '--allow-exec', 'uname,echo', '--aio', 'auto'];
  story.say(`${dim('$')} vmlink-guest ${agentArgs.join(' ')}`);
  const agent = spawn(process.execPath, [GUEST_CLI, ...agentArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The agent logs one line per request; connection open/close lines are left out here.
  const ready = prefixLines(agent, 'agent', (line) => !/ info (dis)?connected /.test(line), ' ready ');
  try {
    let timer: NodeJS.Timeout | undefined;
    const up = await Promise.race([
      ready.then(() => agent.exitCode === null),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), 20_000);
      }),
    ]);
    clearTimeout(timer);
    story.check(up, `agent listening on ${uri}`);
    if (up) await runAgentStory(story, uri, workDir);

    story.heading('stop the agent (SIGTERM)');
    agent.kill('SIGTERM');
    const code = await waitForExit(agent, 15_000);
    story.check(code === 0, `agent exited cleanly (exit code ${code})`);
  } finally {
    if (agent.exitCode === null) agent.kill('SIGKILL');
    await rm(workDir, { recursive: true, force: true });
  }
  story.say(dim(`removed ${workDir}`));
  return story.summary();
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
