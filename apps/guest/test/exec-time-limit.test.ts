/**
 * exec's time limit in the process runner (real processes): 0 means no timer at all (what
 * detached processes use), a positive limit still kills the group with
 * ERR_VMLINK_EXEC_TIMEOUT.
 */
import { describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, startCommand, startTimeLimit } from '../src/methods/exec.js';
import { ExecPolicy } from '../src/policy/exec-policy.js';

async function run(timeoutMs: number, script: string) {
  const policy = await ExecPolicy.create(['sh']);
  const running = await startCommand(await policy.resolve('sh'), ['-c', script], { cwd: '/', signal: new AbortController().signal, timeoutMs });
  const out: Buffer[] = [];
  const exit = await running.collect(async (_stream, chunk) => {
    out.push(Buffer.from(chunk));
  });
  return { exit, out: Buffer.concat(out).toString('utf8') };
}

describe('exec time limit', () => {
  it('startTimeLimit(0) arms no timer; a positive limit arms one, capped at what setTimeout honours', () => {
    let fired = 0;
    expect(startTimeLimit(0, () => fired++)).toBeUndefined();
    const timer = startTimeLimit(MAX_TIMER_MS * 4, () => fired++);
    expect(timer).toBeDefined();
    clearTimeout(timer);
    expect(fired).toBe(0);
  });

  it('timeoutMs: 0 lets a command run to its own end (a 0 ms timer would kill it at once)', async () => {
    // The command waits for its own output to go out, then exits 3 on its own.
    const { exit, out } = await run(0, 'sleep 0.3; echo done; exit 3');
    expect(exit).toEqual({ exitCode: 3, signal: null });
    expect(out).toBe('done\n');
  }, 30_000);

  it('a positive limit still kills the group with ERR_VMLINK_EXEC_TIMEOUT', async () => {
    await expect(run(200, 'sleep 300')).rejects.toMatchObject({ code: 'ERR_VMLINK_EXEC_TIMEOUT' });
  }, 30_000);
});
