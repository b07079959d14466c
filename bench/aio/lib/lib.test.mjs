// bench/aio helpers: the name filter and the CPU accounting (pure logic over /proc/stat
// numbers), and where the data disk's interrupts land (read from this machine's /proc).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { busyCores, diskInterrupts, stealShare } from './cpu.mjs';
import { nameMatches } from './filter.mjs';

describe('nameMatches (--bench, --scenario)', () => {
  it('selects a name where the text starts a word, not inside one', () => {
    expect(nameMatches('4 KiB random read, O_DIRECT, 2 in flight', '2 in flight')).toBe(true);
    expect(nameMatches('4 KiB random read, O_DIRECT, 32 in flight', '2 in flight')).toBe(false);
    expect(nameMatches('4 KiB random read, buffered, warm cache, 32 in flight', 'warm')).toBe(true);
    expect(nameMatches('4 KiB random read, O_DIRECT, 32 in flight', 'O_DIRECT, 32')).toBe(true);
    expect(nameMatches('anything', undefined)).toBe(true);
  });

  it('takes the text literally (no pattern characters)', () => {
    expect(nameMatches('128 KiB sequential read (O_DIRECT)', '(O_DIRECT)')).toBe(true);
    expect(nameMatches('4 KiB random read', '4.KiB')).toBe(false);
  });
});

describe('busyCores and stealShare (/proc/stat deltas)', () => {
  // user nice system idle iowait irq softirq steal
  const before = [100, 0, 100, 1000, 0, 0, 0, 0];

  it('counts everything but idle, iowait and steal as busy, scaled to the cores', () => {
    const after = [150, 0, 150, 1050, 20, 0, 30, 0]; // 130 busy of 200
    expect(busyCores(before, after, 2)).toBeCloseTo((130 / 200) * 2);
    expect(stealShare(before, after)).toBe(0);
  });

  it('steal is neither busy nor idle', () => {
    const after = [150, 0, 100, 1050, 0, 0, 0, 100]; // 50 busy, 100 steal of 200
    expect(busyCores(before, after, 2)).toBeCloseTo(0.5);
    expect(stealShare(before, after)).toBeCloseTo(0.5);
  });

  it('undefined when a snapshot is missing or no time passed', () => {
    expect(busyCores(undefined, before, 2)).toBeUndefined();
    expect(busyCores(before, [...before], 2)).toBeUndefined();
  });
});

describe('diskInterrupts (this machine)', () => {
  it('names a device and CPU shares for a file on a disk, and nothing for a missing path', () => {
    const found = diskInterrupts('/tmp');
    // A disk without per-device interrupt lines (not virtio) has no answer, never a wrong one.
    if (found !== undefined) expect(found).toMatch(/^\S+: CPU\d+ \d+%(, CPU\d+ \d+%)*$/);
    expect(diskInterrupts('/nonexistent/vmlink')).toBeUndefined();
  });
});

describe('runSlice (one engine slice, the body of a fresh process; a real file)', () => {
  it('counts reads after the warm-up and carries a sequential cursor across slices, wrapping at the end', async () => {
    const { runSlice } = await import('./slice.mjs');
    const dir = mkdtempSync(join(tmpdir(), 'vmlink-bench-slice-'));
    try {
      const file = join(dir, 'data');
      const fileSize = 64 * 4096;
      writeFileSync(file, Buffer.alloc(fileSize, 1));
      const job = { engine: 'threadpool', file, fileSize, flags: 'r', depth: 2, blockSize: 4096, pattern: 'seq', seconds: 0.2, warmupSeconds: 0.05, cursor: fileSize - 4096 };
      const result = await runSlice(job);
      expect(result.ops).toBeGreaterThan(0);
      expect(result.seconds).toBeGreaterThan(0.15);
      // Every read issued (counted or not) moved the cursor one block on, modulo the file.
      expect(result.cursor % 4096).toBe(0);
      expect(result.cursor).toBeLessThan(fileSize);
      // As a child process: one JSON line on stdout.
      const script = fileURLToPath(new URL('./slice.mjs', import.meta.url));
      const out = execFileSync(process.execPath, [script, JSON.stringify({ ...job, engine: 'node FileHandle', pattern: 'random' })], { encoding: 'utf8' });
      const child = JSON.parse(out.trim());
      expect(child.ops).toBeGreaterThan(0);
      expect(Object.keys(child).sort()).toEqual(['cursor', 'ops', 'seconds']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('offsetSource (the stall workloads\' offsets, pure logic)', () => {
  it('appends block after block and stops before the cap; random offsets are aligned, below the size, skewed', async () => {
    const { offsetSource } = await import('./stall-run.mjs');
    const append = offsetSource({ kind: 'append', cap: 3 * 4096 }, 4096);
    expect([append(), append(), append(), append()]).toEqual([0, 4096, 8192, null]);
    const random = offsetSource({ kind: 'random', size: 16 * 4096, align: 4096, skew: 1024 }, 2048);
    for (let i = 0; i < 100; i++) {
      const offset = random();
      expect((offset - 1024) % 4096).toBe(0);
      expect(offset).toBeLessThan(16 * 4096 + 1024);
    }
  });
});

describe('runStall (one stall run, the body of a fresh process; a real file)', () => {
  it('measures loop delay and ops, in this process and as a child printing one JSON line', async () => {
    const { runStall } = await import('./stall-run.mjs');
    const dir = mkdtempSync(join(tmpdir(), 'vmlink-bench-stall-'));
    try {
      const path = join(dir, 'data');
      writeFileSync(path, Buffer.alloc(64 * 4096, 1));
      const job = { engine: 'threadpool', path, flags: 'r+', depth: 4, blockSize: 4096, seconds: 0.2, offsets: { kind: 'random', size: 64 * 4096, align: 4096 }, write: true };
      const result = await runStall(job);
      expect(result.opsPerSec).toBeGreaterThan(0);
      expect(result.loopDelayMs.max).toBeGreaterThanOrEqual(result.loopDelayMs.p99);
      expect(result.submitTimeUs.max).toBeGreaterThanOrEqual(0);
      const script = fileURLToPath(new URL('./stall-run.mjs', import.meta.url));
      const out = execFileSync(process.execPath, [script, JSON.stringify({ ...job, engine: 'node FileHandle', write: false })], { encoding: 'utf8' });
      const child = JSON.parse(out.trim());
      expect(child.opsPerSec).toBeGreaterThan(0);
      expect(Object.keys(child.loopDelayMs).sort()).toEqual(['max', 'p50', 'p99']);
      // FileHandle has no stats(): no submit time (JSON drops the undefined), as in-process.
      expect(child.submitTimeUs).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
