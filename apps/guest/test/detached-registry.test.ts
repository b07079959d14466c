/**
 * The detached-process handlers and registry in-process, with real processes (sh, sleep)
 * and the real exec policy, no RPC: what a program that runs the agent as a library
 * relies on. Registry shutdown kills the groups; many registries do not pile up process
 * 'exit' listeners; bad params are typed errors naming the value.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { DetachedRegistry } from '../src/detached/registry.js';
import type { CallContext } from '../src/handlers.js';
import { detachedHandlers } from '../src/methods/detached.js';
import { ForwardTable } from '../src/methods/forward.js';
import { ExecPolicy } from '../src/policy/exec-policy.js';

function context(signal: AbortSignal = new AbortController().signal): CallContext {
  return { peer: 'test', signal, body: undefined, note: () => undefined, forwards: new ForwardTable(), commands: new Map() };
}

async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function setup(limits = { maxRunning: 4, maxExited: 4, outputBytes: 4096 }) {
  const policy = await ExecPolicy.create(['sh', 'sleep']);
  const registry = new DetachedRegistry(limits);
  return { registry, handlers: detachedHandlers({ policy, jail: undefined }, registry) };
}

describe('detached handlers and registry (in-process, real processes)', () => {
  it('registry.shutdown() SIGKILLs every running group, grandchildren included, and refuses new starts', async () => {
    const { registry, handlers } = await setup();
    const started = (await handlers['detached.start']({ command: 'sh', args: ['-c', 'sleep 300 & wait'] }, context())) as { id: string; pid: number };
    const entry = registry.get(started.id, 'test');
    // The grandchild's pid: the only child of sh.
    let sleepPid = 0;
    for (let i = 0; i < 200 && sleepPid === 0; i += 1) {
      const children = await readFile(`/proc/${started.pid}/task/${started.pid}/children`, 'utf8').catch(() => '');
      sleepPid = Number(children.trim().split(' ')[0] ?? 0) || 0;
      if (sleepPid === 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(sleepPid).toBeGreaterThan(0);
    registry.shutdown();
    const result = await entry.finished;
    expect(result).toEqual({ exitCode: null, signal: 'SIGKILL' });
    for (let i = 0; i < 100 && (await alive(sleepPid)); i += 1) await new Promise((r) => setTimeout(r, 20));
    expect(await alive(sleepPid)).toBe(false);
    await expect(handlers['detached.start']({ command: 'sleep', args: ['1'] }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_SHUTTING_DOWN' });
  });

  it('fifty registries that ran a process add no process exit listeners beyond one', async () => {
    const before = process.listenerCount('exit');
    for (let i = 0; i < 50; i += 1) {
      const { registry, handlers } = await setup();
      const started = (await handlers['detached.start']({ command: 'sh', args: ['-c', 'exit 0'] }, context())) as { id: string };
      await registry.get(started.id, 'test').finished;
    }
    expect(process.listenerCount('exit') - before).toBeLessThanOrEqual(1);
  });

  it('bad params are typed errors naming the value; unknown ids are ERR_VMLINK_NO_SUCH_PROCESS', async () => {
    const { handlers } = await setup();
    await expect(handlers['detached.start']({ command: 'uname' }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_EXEC_DENIED' });
    await expect(handlers['detached.start']({ command: 'sh', args: 'oops' }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining("'oops'") });
    await expect(handlers['detached.wait']({ id: 42 }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_NO_SUCH_PROCESS', message: expect.stringContaining('42') });
    const started = (await handlers['detached.start']({ command: 'sleep', args: ['300'] }, context())) as { id: string };
    await expect(handlers['detached.kill']({ id: started.id, signal: 'SIGSTOP' }, context())).rejects.toMatchObject({
      code: 'ERR_VMLINK_INVALID_PARAMS',
      message: expect.stringContaining("'SIGSTOP'"),
    });
    await expect(handlers['detached.wait']({ id: started.id, timeoutMs: -1 }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
    await expect(handlers['detached.attach']({ id: started.id, fromStart: 'yes' }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
    // A wait whose client goes away ends with the client's reason; the process runs on.
    const gone = new AbortController();
    const waiting = handlers['detached.wait']({ id: started.id }, context(gone.signal));
    gone.abort(Object.assign(new Error('client gone'), { code: 'ERR_VMLINK_CLIENT_GONE' }));
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_VMLINK_CLIENT_GONE' });
    await expect(handlers['detached.kill']({ id: started.id, signal: 'SIGKILL' }, context())).resolves.toMatchObject({ delivered: true });
    await expect(handlers['detached.wait']({ id: started.id }, context())).resolves.toMatchObject({ state: 'exited', signal: 'SIGKILL' });
  });

  it('concurrent starts cannot overshoot --max-detached: 6 at once with room for 2 start exactly 2', async () => {
    const { registry, handlers } = await setup({ maxRunning: 2, maxExited: 4, outputBytes: 1024 });
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => handlers['detached.start']({ command: 'sleep', args: ['300'] }, context())));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'ERR_VMLINK_DETACHED_LIMIT' });
    expect(registry.running).toBe(2);
    registry.shutdown();
    await Promise.all(registry.list().map((p) => p.finished));
  });

  it('--max-detached 0: ERR_VMLINK_DETACHED_DISABLED before anything is spawned', async () => {
    const { handlers } = await setup({ maxRunning: 0, maxExited: 0, outputBytes: 1024 });
    await expect(handlers['detached.start']({ command: 'sleep', args: ['1'] }, context())).rejects.toMatchObject({ code: 'ERR_VMLINK_DETACHED_DISABLED' });
  });
});
