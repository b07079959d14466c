/**
 * The detached-process commands' own argument handling and ps formatting: pure logic
 * (usage errors are decided before any connection is made; nothing is dialed here).
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DetachedProcessInfo } from '@vmlink/agent-protocol';
import { detachedExitCode, formatPs, runDetachedCli, statusOf } from '../src/commands/detached.js';
import type { CliOutput } from '../src/output.js';

function capture(): { out: CliOutput; text: () => { stdout: string; stderr: string } } {
  let stdout = '';
  let stderr = '';
  const sink = (add: (t: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, done) {
        add(chunk.toString());
        done();
      },
    });
  return { out: { stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)) }, text: () => ({ stdout, stderr }) };
}

describe('detached commands: which argv is ours (pure logic)', () => {
  it('ps/wait/kill/attach and exec --detach are ours; plain exec, and --detach after -- are not', () => {
    expect(runDetachedCli(['exec', 'unix:/x.sock', '--', 'sh'])).toBeUndefined();
    expect(runDetachedCli(['exec', 'unix:/x.sock', '--', 'sh', '--detach'])).toBeUndefined();
    expect(runDetachedCli(['ping', 'unix:/x.sock'])).toBeUndefined();
    expect(runDetachedCli([])).toBeUndefined();
  });

  it.each([
    [['ps'], 'ps needs a URI'],
    [['wait', 'unix:/x.sock'], "wait needs the ID that 'vmlink exec --detach' printed"],
    [['kill', 'unix:/x.sock', 'abc', '--signal', 'STOP'], "--signal must be one of TERM, INT, KILL, HUP, QUIT, got 'STOP'"],
    [['attach', 'unix:/x.sock', 'abc', '--count', '3'], "attach: unknown option '--count'"],
    [['attach', 'unix:/x.sock', 'abc', '--from-strat'], "did you mean '--from-start'?"],
    [['wait', 'unix:/x.sock', 'abc', '--timeout', 'soon'], "--timeout must be a duration like 500ms, 30s, 2m or ms, got 'soon'"],
    [['exec', '--detach', 'unix:/x.sock'], "exec --detach needs '-- CMD [ARGS...]'"],
    [['ps', 'unix:/x.sock', 'extra'], "ps: unexpected argument 'extra'"],
    [['ps', 'unix:/x.sock', '--', 'sh'], "ps: '--' is only for exec"],
  ])('%j is a usage error (2) saying %s, before any connection', async (argv, message) => {
    const { out, text } = capture();
    expect(await runDetachedCli(argv, out, {})).toBe(2);
    expect(text().stderr).toContain(message);
    expect(text().stderr).toMatch(/Try 'vmlink \w+ --help'/);
  });

  it('--help prints the command usage', async () => {
    const { out, text } = capture();
    expect(await runDetachedCli(['attach', '--help'], out, {})).toBe(0);
    expect(text().stdout).toContain('Usage: vmlink attach URI ID [--from-start]');
    expect(text().stdout).toContain('--from-start');
  });
});

describe('detached commands: exit codes and ps table (pure logic)', () => {
  it('exit status like a shell; our codes for the detached refusals', () => {
    expect(statusOf({ exitCode: 3, signal: null })).toBe(3);
    expect(statusOf({ exitCode: null, signal: 'SIGTERM' })).toBe(143);
    expect(detachedExitCode('wait', 'ERR_VMLINK_NO_SUCH_PROCESS')).toBe(66);
    expect(detachedExitCode('exec', 'ERR_VMLINK_DETACHED_LIMIT')).toBe(75);
    expect(detachedExitCode('exec', 'ERR_VMLINK_DETACHED_DISABLED')).toBe(77);
    expect(detachedExitCode('exec', 'ENOENT')).toBe(127);
    expect(detachedExitCode('exec', 'ERR_VMLINK_EXEC_DENIED')).toBe(77);
  });

  it('ps: aligned columns, the command last and quoted where needed', () => {
    const base: DetachedProcessInfo = {
      id: '0123456789abcdef',
      pid: 42,
      command: 'sh',
      args: ['-c', 'echo hi; exit 2'],
      state: 'exited',
      exitCode: 2,
      signal: null,
      startedAt: Date.UTC(2026, 0, 2, 3, 4, 5),
      exitedAt: Date.UTC(2026, 0, 2, 3, 4, 6),
      stdout: { total: 3 * 1024 * 1024, kept: 1024 * 1024, dropped: 2 * 1024 * 1024 },
      stderr: { total: 0, kept: 0, dropped: 0 },
    };
    const running: DetachedProcessInfo = { ...base, id: 'fedcba9876543210', pid: 7, command: 'sleep', args: ['300'], state: 'running', exitCode: null, exitedAt: null };
    const table = formatPs([running, base], Date.UTC(2026, 0, 2, 3, 5, 5)).split('\n');
    expect(table[0]).toMatch(/^ID\s+PID\s+STATE\s+EXIT\s+STARTED\s+STDOUT KEPT\/DROPPED\s+STDERR KEPT\/DROPPED\s+COMMAND$/);
    expect(table[1]).toMatch(/^fedcba9876543210\s+7\s+running\s+-\s+2026-01-02 03:04:05 \(60s ago\)\s+1\.0M\/2\.0M\s+0B\/0B\s+sleep 300$/);
    expect(table[2]).toMatch(/^0123456789abcdef\s+42\s+exited\s+2\s+.*sh -c 'echo hi; exit 2'$/);
    expect(table[1]?.indexOf('running')).toBe(table[2]?.indexOf('exited'));
  });
});
