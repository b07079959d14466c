import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBackend } from '@vmlink/aio';
import {
  allowedCpus,
  completionCpus,
  blockDeviceOf,
  createThreadPoolBackend,
  deviceInterrupts,
  parseCpuList,
  leavesACpuOut,
  resolveOptions,
  workerCpuSet,
  WorkerCpus,
  type DeviceInterrupt,
} from '../src/index.js';

describe('parseCpuList (pure logic)', () => {
  it('reads single CPUs, ranges and their mix; empty is none; anything else is undefined', () => {
    expect(parseCpuList('0-1\n')).toEqual([0, 1]);
    expect(parseCpuList('3,0-2,8')).toEqual([0, 1, 2, 3, 8]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('2-1')).toBeUndefined();
    expect(parseCpuList('a')).toBeUndefined();
    expect(parseCpuList('1,,2')).toBeUndefined();
  });
});

describe('completionCpus (pure logic)', () => {
  const line = (perCpuCount: number[], cpus: number[]): DeviceInterrupt => ({ name: 'test', perCpuCount, cpus });

  it('a single-queue disk: its busy line\'s CPUs; a config line that fired once does not count', () => {
    expect(completionCpus([line([0, 1], [0]), line([0, 68_000_000], [1])])).toEqual([1]);
  });

  it('a multi-queue disk: every queue\'s CPUs', () => {
    expect(completionCpus([line([5, 0], [0]), line([40_000, 0], [0]), line([0, 38_000], [1])])).toEqual([0, 1]);
  });

  it('follows where a line goes now, not where it went (the count only says it is busy)', () => {
    expect(completionCpus([line([90_000, 10], [1])])).toEqual([1]);
  });

  it('too few interrupts say nothing', () => {
    expect(completionCpus([line([0, 999], [1])])).toBeUndefined();
    expect(completionCpus([line([0, 999], [1])], { minInterrupts: 10, minShare: 0.05 })).toEqual([1]);
    expect(completionCpus([])).toBeUndefined();
  });
});

describe('workerCpuSet (pure logic)', () => {
  it('the union of the files\' devices within the allowed CPUs, when it leaves some out', () => {
    expect(workerCpuSet([[1]], [0, 1])).toEqual([1]);
    expect(workerCpuSet([[1], [1]], [0, 1, 2, 3])).toEqual([1]);
    expect(workerCpuSet([[1], [3]], [0, 1, 2, 3])).toEqual([1, 3]);
  });

  it('none: no file, a file of unknown device, every CPU, or none of the allowed ones', () => {
    expect(workerCpuSet([], [0, 1])).toBeUndefined();
    expect(workerCpuSet([[1], undefined], [0, 1])).toBeUndefined();
    expect(workerCpuSet([[0], [1]], [0, 1])).toBeUndefined();
    expect(workerCpuSet([[5]], [0, 1])).toBeUndefined();
  });
});

describe('leavesACpuOut (pure logic)', () => {
  it('true when the held CPUs take in some of the allowed ones and leave one out', () => {
    expect(leavesACpuOut([1], [0, 1])).toBe(true);
    expect(leavesACpuOut([1, 5], [0, 1])).toBe(true); // 5 is not the process's: only 1 counts
    expect(leavesACpuOut([0, 1], [0, 1])).toBe(false);
    expect(leavesACpuOut([5], [0, 1])).toBe(false); // none of the process's: the workers cannot be held there
    expect(leavesACpuOut(undefined, [0, 1])).toBe(false);
    expect(leavesACpuOut([1], undefined)).toBe(false);
  });
});

describe('WorkerCpus (pure logic)', () => {
  it('applies each change as files attach and detach, once per change; detach twice is harmless', () => {
    const applied: (readonly number[] | undefined)[] = [];
    const cpus = new WorkerCpus([0, 1, 2, 3], (set) => applied.push(set));
    const first = cpus.attach([1]);
    const second = cpus.attach([1]);
    expect(applied).toEqual([[1]]);
    const third = cpus.attach([2]);
    expect(applied).toEqual([[1], [1, 2]]);
    third();
    third();
    expect(applied).toEqual([[1], [1, 2], [1]]);
    const unknown = cpus.attach(undefined);
    expect(cpus.current).toBeUndefined();
    unknown();
    first();
    expect(cpus.current).toEqual([1]);
    second();
    expect(applied).toEqual([[1], [1, 2], [1], undefined, [1], undefined]);
  });
});

describe('workerCpus option', () => {
  it('defaults to completions; takes any and CPU lists (sorted, deduplicated)', () => {
    expect(resolveOptions(undefined).workerCpus).toBe('completions');
    expect(resolveOptions({ workerCpus: 'any' }).workerCpus).toBe('any');
    expect(resolveOptions({ workerCpus: [3, 1, 3] }).workerCpus).toEqual([1, 3]);
  });

  it('bad values are typed errors naming the option', () => {
    expect(() => resolveOptions({ workerCpus: 'fast' as never })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.workerCpus') }));
    expect(() => resolveOptions({ workerCpus: 1 as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.workerCpus') }));
    expect(() => resolveOptions({ workerCpus: [] })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('non-empty') }));
    expect(() => resolveOptions({ workerCpus: [0, 1024] })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.workerCpus[1]') }));
    expect(() => resolveOptions({ workerCpus: [0.5] })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});

/** Cpus_allowed_list of each thread named vmlink-aio in this process, by TID. */
function workerAffinities(): Map<string, string> {
  const found = new Map<string, string>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== 'vmlink-aio') continue;
      const line = /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'));
      found.set(tid, line?.[1] ?? '');
    } catch {
      // the thread ended meanwhile
    }
  }
  return found;
}

/** Waits until every worker of this process has moved to `expected` (workers move before their next request, sleepers are woken). */
async function workersOn(expected: string, tids: readonly string[]): Promise<void> {
  const wanted = JSON.stringify(parseCpuList(expected));
  for (let tries = 0; ; tries++) {
    const now = workerAffinities();
    const moved = tids.filter((tid) => now.has(tid)).every((tid) => JSON.stringify(parseCpuList(now.get(tid) ?? '')) === wanted);
    if (moved) return;
    if (tries === 300) throw new Error(`workers not on ${expected}: ${JSON.stringify([...now])}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The CPUs that took at least 5% of the interrupts of the disk holding `path`, read another
 * way than the module does: the disk's virtio/nvme name in its sysfs path, its rows in
 * /proc/interrupts (config rows left out). Undefined for other disks.
 */
function diskCompletionCpusFromProc(path: string): number[] | undefined {
  const dev = statSync(path).dev;
  const sysPath = realpathSync(`/sys/dev/block/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`);
  const name = sysPath.split('/').find((part) => /^(virtio|nvme)\d+$/.test(part));
  if (name === undefined) return undefined;
  const rows = readFileSync('/proc/interrupts', 'utf8').split('\n');
  const cpuCount = (rows[0] ?? '').trim().split(/\s+/).length;
  const perCpu = new Array<number>(cpuCount).fill(0);
  for (const row of rows.slice(1)) {
    if (!new RegExp(`\\b${name}(-|q)`).test(row) || row.includes('config')) continue;
    row.trim().split(/\s+/).slice(1, cpuCount + 1).map(Number).forEach((n, cpu) => (perCpu[cpu] = (perCpu[cpu] ?? 0) + n));
  }
  const total = perCpu.reduce((a, b) => a + b, 0);
  if (total < 1000) return undefined;
  return perCpu.flatMap((n, cpu) => (n >= 0.05 * total ? [cpu] : []));
}

/** The main thread's Cpus_allowed_list, as /proc writes it. */
function mainThreadCpus(): string {
  return /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
}

describe('blockDeviceOf (pure logic)', () => {
  /** glibc's makedev. */
  const makedev = (major: bigint, minor: bigint): bigint =>
    ((major & 0xfffff000n) << 32n) | ((major & 0xfffn) << 8n) | ((minor & 0xffffff00n) << 12n) | (minor & 0xffn);
  const stat = (dev: bigint, rdev: bigint, block: boolean) => ({ dev, rdev, isBlockDevice: () => block });

  it('a file: the device it lives on; a block device node: itself, not the devtmpfs holding the node', () => {
    expect(blockDeviceOf(stat(makedev(254n, 1n), 0n, false))).toBe('254:1');
    expect(blockDeviceOf(stat(makedev(0n, 5n), makedev(259n, 3n), true))).toBe('259:3');
  });

  it('decodes dev_t in full: minors past 255, majors past 4095', () => {
    expect(blockDeviceOf(stat(makedev(8n, 300n), 0n, false))).toBe('8:300');
    expect(blockDeviceOf(stat(makedev(4096n + 7n, (1n << 20n) + 9n), 0n, false))).toBe(`${4096 + 7}:${(1 << 20) + 9}`);
  });

  it('major 0 (tmpfs, procfs, a character device\'s node) is no block device', () => {
    expect(blockDeviceOf(stat(makedev(0n, 42n), 0n, false))).toBeUndefined();
  });
});

describe('deviceInterrupts (this machine: sysfs and procfs)', () => {
  it('a character device, a tmpfs directory and procfs have no disk; a file on this machine\'s disk has its lines, each a name and per-CPU counts', () => {
    for (const noDisk of ['/dev/null', '/dev/shm', '/proc/self'].filter((path) => existsSync(path))) {
      const fd = openSync(noDisk, 'r');
      try {
        expect(deviceInterrupts(fd), noDisk).toBeUndefined();
      } finally {
        closeSync(fd);
      }
    }
    const tmpFd = openSync(tmpdir(), 'r');
    try {
      const lines = deviceInterrupts(tmpFd);
      // A disk without MSI lines (or a tmpfs /tmp) has no answer, never a wrong one.
      for (const line of lines ?? []) {
        expect(line.perCpuCount.every((count) => Number.isInteger(count) && count >= 0)).toBe(true);
        expect(line.cpus.length).toBeGreaterThan(0);
      }
      // A virtio or NVMe disk whose rows /proc/interrupts shows: the module must find its lines too.
      if (diskCompletionCpusFromProc(tmpdir()) !== undefined) expect(lines?.length).toBeGreaterThan(0);
    } finally {
      closeSync(tmpFd);
    }
  });
});

describe('workers follow the completion interrupts (real threads, real files, /proc)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-cpus-'));
  const path = join(dir, 'data');
  writeFileSync(path, Buffer.alloc(1 << 16, 7));
  const allowed = allowedCpus() ?? [];
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('an explicit list holds every worker there, including sleeping ones', async () => {
    const before = new Set(workerAffinities().keys());
    const backend = createThreadPoolBackend({ minThreads: 3, workerCpus: [0] });
    close = () => backend.close();
    const file = await backend.open(path, 'r');
    await file.read(Buffer.alloc(4096), 0);
    expect(backend.stats().threads?.cpus).toEqual([0]);
    const ours = [...workerAffinities().keys()].filter((tid) => !before.has(tid));
    expect(ours.length).toBeGreaterThanOrEqual(1);
    await workersOn('0', ours);
    expect(backend.stats().threads?.affinityError).toBeUndefined();
    await file.close();
  });

  it('a CPU the process cannot use: the worker stays where it was and stats say why', async () => {
    const backend = createThreadPoolBackend({ minThreads: 1, workerCpus: [1023] });
    close = () => backend.close();
    const file = await backend.open(path, 'r');
    await expect(file.read(Buffer.alloc(4096), 0)).resolves.toBe(4096);
    expect(backend.stats().threads?.affinityError).toBe('EINVAL');
    await file.close();
  });

  it('completions: while a file is open the workers run where its disk\'s completions land, after it closes anywhere again', async () => {
    const expected = diskCompletionCpusFromProc(path);
    const before = new Set(workerAffinities().keys());
    const backend = await createBackend('threadpool', { minThreads: 2 });
    close = () => backend.close();
    const ours = () => [...workerAffinities().keys()].filter((tid) => !before.has(tid));
    const file = await backend.open(path, 'r');
    await file.read(Buffer.alloc(4096), 0);
    // A disk this reading does not know (not virtio, not NVMe): the module's choice is only checked for being obeyed.
    const pinned = expected === undefined ? backend.stats().threads?.cpus : expected.length < allowed.length ? expected : undefined;
    expect(backend.stats().threads?.cpus).toEqual(pinned);
    if (pinned !== undefined) {
      // The second worker is named (and so found) once it runs: wait for it.
      for (let tries = 0; ours().length < 2; tries++) {
        if (tries === 300) throw new Error(`only ${ours().length} of 2 workers found`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await workersOn(pinned.join(','), ours());
    }
    await file.close();
    expect(backend.stats().threads?.cpus).toBeUndefined();
    await workersOn(mainThreadCpus(), ours());
  });
});
