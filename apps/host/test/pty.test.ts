/**
 * Issue 12 §1: `vmlink exec -it` and `vmlink shell` give a real terminal in the guest.
 * The real CLI runs as the session leader of a pseudo-terminal this test opens with the
 * vmlink addon (test/terminal-harness.ts): the test types into it, reads the screen,
 * resizes it, and compares its modes with those of a fresh terminal afterwards. Agent
 * over unix. The guest's terminal already turns \n into \r\n; ours must show its bytes
 * unchanged (output processing off while the session runs, as ssh does).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { endianness, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, HOST_CLI, startAgent } from './helpers.js';
import { freshTerminalModes, ptyBinding, runInTerminal, type Terminal } from './terminal-harness.js';

const PROMPT = /[$#] $/;

/** Whether the terminal modes (tcgetattr bytes) have output post-processing (OPOST) on. */
function outputProcessing(modes: Buffer): boolean {
  const layout = (ptyBinding() as unknown as { termiosLayout?: { oflagOffset: number; OPOST: number } }).termiosLayout;
  if (!layout) throw new Error('the addon has no termiosLayout: rebuild it (npm run build -w @vmlink/native)');
  const oflag = endianness() === 'LE' ? modes.readUInt32LE(layout.oflagOffset) : modes.readUInt32BE(layout.oflagOffset);
  return (oflag & layout.OPOST) !== 0;
}

function vmlinkInTerminal(args: readonly string[], size = { cols: 100, rows: 30 }): Terminal {
  return runInTerminal(process.execPath, [HOST_CLI, ...args], size);
}

describe('vmlink exec -it / vmlink shell: a real terminal (unix)', () => {
  let work: string;
  let agent: AgentProcess;
  let baseline: Buffer;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-pty-'));
    await mkdir(path.join(work, 'root', 'sub'), { recursive: true });
    agent = await startAgent(path.join(work, 'agent.sock'), ['--aio', 'fs', '--root', path.join(work, 'root'), '--allow-exec', 'sh', '--allow-env', 'GREETING']);
    baseline = freshTerminalModes();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('echo, stty size at start and after a resize, Ctrl-C interrupts sleep, the exit code comes back, the modes are restored', async () => {
    const term = vmlinkInTerminal(['exec', '-it', agent.uri, '--', 'sh']);
    try {
      await term.until(PROMPT);
      // Raw while the session runs: our terminal neither echoes nor edits lines.
      expect(term.modes().equals(baseline)).toBe(false);

      let mark = term.screen().length;
      term.type('echo hel""lo-$((6*7))\r');
      // The remote terminal echoes what we type; the shell prints the result.
      const shown = await term.until(/hello-42\r+\n/, mark);
      expect(shown).toContain('echo hel""lo-$((6*7))');

      mark = term.screen().length;
      term.type('stty size\r');
      expect(await term.until(/\d+ \d+\r+\n/, mark)).toContain('30 100');

      // SIGWINCH reaches the CLI at its own pace: the loop prints the size until it changes.
      // The loop is a job of its own (sh -c): the interactive shell runs a bare loop itself and
      // gives the terminal to each stty/sleep in turn, so a Ctrl-C landing while it forks the
      // next one was lost (the loop went on: seen under load).
      mark = term.screen().length;
      term.type("sh -c 'while :; do stty size; sleep 0.2; done'\r");
      await term.until('30 100', mark);
      term.resize(120, 40);
      await term.until('40 120', mark);
      // Ctrl-C travels as a byte; the guest terminal turns it into SIGINT for the loop.
      term.type('\x03');
      await term.until(PROMPT, term.screen().lastIndexOf('40 120'));

      // The job prints once it runs in the foreground (the shell hands it the terminal
      // before exec), so the Ctrl-C cannot land while the shell is still starting it.
      mark = term.screen().length;
      term.type("sh -c 'echo sleep-$$-runs; exec sleep 1000'\r");
      await term.until(/sleep-\d+-runs/, mark);
      term.type('\x03');
      mark = term.screen().length;
      term.type('echo status-$?\r');
      expect(await term.until(/status-\d+/, mark)).toMatch(/status-130/);

      term.type('exit 7\r');
      expect(await term.exited).toEqual({ code: 7, signal: null });
      expect(term.modes().equals(baseline)).toBe(true);
    } finally {
      term.close();
    }
  }, 60_000);

  it("the guest's bytes reach our terminal unchanged: printf 'a\\nb\\n' shows a\\r\\nb\\r\\n, not \\r\\r\\n; output processing is off during the session and back after", async () => {
    expect(outputProcessing(baseline)).toBe(true);
    const term = vmlinkInTerminal(['exec', '-it', agent.uri, '--', 'sh', '-c', "printf 'a\\nb\\nend'; read line; exit 3"]);
    try {
      await term.until('end');
      expect(term.screen()).toContain('a\r\nb\r\nend');
      expect(term.screen()).not.toContain('\r\r\n');
      expect(outputProcessing(term.modes())).toBe(false);
      term.type('\r');
      expect(await term.exited).toEqual({ code: 3, signal: null });
      expect(term.modes().equals(baseline)).toBe(true);
    } finally {
      term.close();
    }
  }, 60_000);

  it('vmlink shell: sh by default, --env of an allowed name, --cwd under the root, Ctrl-D ends it (exit 0)', async () => {
    const term = vmlinkInTerminal(['shell', agent.uri, '--env', 'GREETING=hi there', '--cwd', '/sub']);
    try {
      await term.until(PROMPT);
      const mark = term.screen().length;
      term.type('echo "[$GREETING]" "$(pwd -P)"\r');
      const shown = await term.until(/\[hi there\] \S+\r+\n/, mark);
      expect(shown).toMatch(/\[hi there\] \S+\/root\/sub\r+\n/);
      term.type('\x04');
      expect(await term.exited).toEqual({ code: 0, signal: null });
      expect(term.modes().equals(baseline)).toBe(true);
    } finally {
      term.close();
    }
  }, 60_000);

  it('refusals are said in words, before the terminal goes raw: a command not allowed (77), an env name not allowed (77), a cwd outside the root (77)', async () => {
    const cases: [string[], RegExp][] = [
      [['exec', '-it', agent.uri, '--', 'cat'], /not allowed on this agent.*exec of 'cat' refused by policy.*\[ERR_VMLINK_EXEC_DENIED\]/],
      [['shell', agent.uri, '--env', 'SECRET=1'], /env name 'SECRET' refused by policy \(allowed: GREETING\).*\[ERR_VMLINK_ENV_DENIED\]/],
      [['shell', agent.uri, '--cwd', '/../..'], /\[ERR_VMLINK_PATH_ESCAPE\]/],
    ];
    for (const [args, said] of cases) {
      const term = vmlinkInTerminal(args);
      try {
        expect(await term.exited).toEqual({ code: 77, signal: null });
        expect(term.screen()).toMatch(said);
        expect(term.modes().equals(baseline)).toBe(true);
      } finally {
        term.close();
      }
    }
  }, 60_000);

  it('SIGTERM to the CLI mid-session: the terminal is restored, exit 143, the remote group is gone', async () => {
    const term = vmlinkInTerminal(['exec', '-it', agent.uri, '--', 'sh']);
    try {
      await term.until(PROMPT);
      const mark = term.screen().length;
      term.type('sleep 1000 & echo "bg=$!"\r');
      const pid = Number(/bg=(\d+)/.exec(await term.until(/bg=\d+/, mark))?.[1]);
      expect(pid).toBeGreaterThan(0);
      process.kill(term.pid, 'SIGTERM');
      expect(await term.exited).toEqual({ code: 143, signal: null });
      expect(term.modes().equals(baseline)).toBe(true);
      await eventuallyGone(pid);
    } finally {
      term.close();
    }
  }, 60_000);

  it('the agent dies mid-session: exit 74 (connection lost), the terminal is restored', async () => {
    const doomed = await startAgent(path.join(work, 'doomed.sock'), ['--aio', 'fs', '--allow-exec', 'sh']);
    const term = vmlinkInTerminal(['shell', doomed.uri]);
    try {
      await term.until(PROMPT);
      await doomed.stop('SIGKILL');
      expect(await term.exited).toEqual({ code: 74, signal: null });
      expect(term.screen()).toMatch(/ERR_VMLINK_CONNECTION_LOST/);
      expect(term.modes().equals(baseline)).toBe(true);
    } finally {
      term.close();
    }
  }, 60_000);

  it('-t without a terminal on stdin is a usage error (2) and starts nothing', async () => {
    const { runVmlink } = await import('./helpers.js');
    const run = await runVmlink(['exec', '-t', agent.uri, '--', 'sh']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/needs a terminal on stdin/);
  });
});

async function eventuallyGone(pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`pid ${pid} is still running`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
