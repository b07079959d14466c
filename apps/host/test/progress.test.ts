import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, ProgressBar, renderProgressLine } from '../src/progress.js';

describe('progress formatting (pure)', () => {
  it('formats sizes and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64.0 MiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatDuration(65)).toBe('01:05');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(Number.NaN)).toBe('--:--');
  });

  it('renders percent, rate and ETA within the terminal width', () => {
    const line = renderProgressLine('up', { done: 32 * 1024 * 1024, total: 64 * 1024 * 1024, elapsedMs: 2000 }, 100);
    expect(line).toContain(' 50%');
    expect(line).toContain('16.0 MiB/s');
    expect(line).toContain('ETA 00:02');
    expect(line.length).toBeLessThanOrEqual(100);
  });

  it('draws nothing when the output is not a terminal', () => {
    const written: string[] = [];
    const bar = new ProgressBar('x', 10, { isTTY: false, write: (t: string) => written.push(t) }, 0);
    bar.advance(5);
    bar.finish();
    expect(written).toEqual([]);
  });

  it('falls back to 80 columns on a terminal that reports none', () => {
    const written: string[] = [];
    const bar = new ProgressBar('x', 10, { isTTY: true, columns: 0, write: (t: string) => written.push(t) }, 0);
    bar.advance(5);
    expect(written.join('')).toContain('50%');
  });

  it('draws and ends with a newline on a terminal', () => {
    const written: string[] = [];
    const bar = new ProgressBar('x', 10, { isTTY: true, columns: 80, write: (t: string) => written.push(t) }, 0);
    bar.advance(10);
    bar.finish();
    expect(written.at(-1)).toBe('\n');
    expect(written.join('')).toContain('100%');
  });
});
