import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createThreadPoolIo, DEFAULT_WORKER_SCHEDULING, resolveOptions, type ThreadPoolIo } from '../src/index.js';

const SCHED_BATCH = 3;
const SCHED_IDLE = 5;

/** This process's threads and their Linux scheduling policy (/proc/self/task/TID/stat, field 41). */
function threadPolicies(): Map<number, number> {
  const policies = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // Fields after the ")" closing the name start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    policies.set(Number(tid), Number(fields[41 - 3]));
  }
  return policies;
}

/** The policies of the threads started since `before`. */
function newThreadPolicies(before: Map<number, number>): number[] {
  return [...threadPolicies()].filter(([tid]) => !before.has(tid)).map(([, policy]) => policy);
}

/**
 * Resolves once all `count` workers wait for work: a worker counts itself idle only after
 * it has set its policy, so /proc shows the policy it runs under (not the one it was born with).
 */
async function workersIdle(io: ThreadPoolIo, count: number): Promise<void> {
  for (let tries = 0; io.threadStats().idle < count; tries++) {
    if (tries === 500) throw new Error(`only ${io.threadStats().idle} of ${count} workers started`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The names (/proc/self/task/TID/comm) of the threads started since `before`. */
function newThreadNames(before: Map<number, number>): string[] {
  const names: string[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    if (before.has(Number(tid))) continue;
    try {
      names.push(readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim());
    } catch {
      // the thread ended meanwhile
    }
  }
  return names;
}

describe('worker scheduling (real threads, policy read from /proc)', () => {
  let io: ThreadPoolIo | undefined;
  afterEach(async () => {
    await io?.close();
    io = undefined;
  });

  it("defaults to 'normal' and rejects anything but 'normal', 'batch' or 'idle', naming the value", () => {
    expect(DEFAULT_WORKER_SCHEDULING).toBe('normal');
    expect(resolveOptions({}).workerScheduling).toBe('normal');
    expect(resolveOptions({ workerScheduling: 'batch' }).workerScheduling).toBe('batch');
    expect(resolveOptions({ workerScheduling: 'idle' }).workerScheduling).toBe('idle');
    expect(() => resolveOptions({ workerScheduling: 'fifo' })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('Received fifo') }));
    expect(() => resolveOptions({ workerScheduling: 3 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.workerScheduling') }));
  });

  it("'batch': every worker runs under SCHED_BATCH and the stats say so", async () => {
    const before = threadPolicies();
    io = createThreadPoolIo({ threads: 3, workerScheduling: 'batch' });
    await workersIdle(io, 3);
    const started = newThreadPolicies(before);
    expect(started.filter((policy) => policy === SCHED_BATCH)).toHaveLength(3);
    expect(io.threadStats()).toMatchObject({ current: 3, scheduling: 'batch' });
    expect(io.threadStats().schedulingError).toBeUndefined();
    // The loop thread keeps its own policy.
    expect(threadPolicies().get(process.pid)).toBe(before.get(process.pid));
  });

  it("'idle': every worker runs under SCHED_IDLE, the loop thread keeps its policy", async () => {
    const before = threadPolicies();
    io = createThreadPoolIo({ threads: 3, workerScheduling: 'idle' });
    await workersIdle(io, 3);
    expect(newThreadPolicies(before).filter((policy) => policy === SCHED_IDLE)).toHaveLength(3);
    expect(io.threadStats()).toMatchObject({ current: 3, scheduling: 'idle' });
    expect(io.threadStats().schedulingError).toBeUndefined();
    expect(threadPolicies().get(process.pid)).toBe(before.get(process.pid));
  });

  it("the default, 'normal', leaves the workers as the process's other threads", async () => {
    const before = threadPolicies();
    io = createThreadPoolIo({ threads: 3 });
    await workersIdle(io, 3);
    const started = newThreadPolicies(before);
    expect(started.length).toBeGreaterThanOrEqual(3);
    expect(started.filter((policy) => policy === SCHED_BATCH || policy === SCHED_IDLE)).toHaveLength(0);
    expect(io.threadStats().scheduling).toBe('normal');
  });

  it("workers are named 'vmlink-aio' (what top -H and perf show), the loop thread keeps its name", async () => {
    const before = threadPolicies();
    const loopName = readFileSync(`/proc/self/task/${process.pid}/comm`, 'utf8');
    io = createThreadPoolIo({ threads: 3 });
    await workersIdle(io, 3);
    expect(newThreadNames(before).filter((name) => name === 'vmlink-aio')).toHaveLength(3);
    expect(readFileSync(`/proc/self/task/${process.pid}/comm`, 'utf8')).toBe(loopName);
  });
});
