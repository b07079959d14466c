import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { patternBytes } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

const FS_BYTES = 1 << 20;

/**
 * A full file system: a 1 MiB tmpfs mounted by the test itself (needs root on Linux).
 * The write fails with ENOSPC and nothing is reported as written that was not.
 */
export function enospcTests(ctx: AioSuiteContext): void {
  let mountPoint: string | undefined;
  let unavailable: string | undefined;

  beforeAll(() => {
    if (process.platform !== 'linux' || process.getuid?.() !== 0) {
      unavailable = 'mounting a small tmpfs needs root on Linux';
      return;
    }
    const dir = mkdtempSync(join(ctx.setup.dir ?? tmpdir(), 'vmlink-enospc-'));
    mkdirSync(dir, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES},mode=0700`, 'vmlink-enospc', dir], { stdio: 'pipe' });
      mountPoint = dir;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      unavailable = `cannot mount a tmpfs here: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
    }
  });

  afterAll(() => {
    if (mountPoint === undefined) return;
    execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    rmSync(mountPoint, { recursive: true, force: true });
  });

  function requireMount(test: TestContext): string {
    if (mountPoint === undefined) test.skip(unavailable ?? 'no tmpfs');
    return mountPoint!;
  }

  it('a write that does not fit fails with ENOSPC; nothing unwritten is reported as written', async (test) => {
    const dir = requireMount(test);
    const file = await ctx.backend().open(join(dir, 'big'), 'w+');
    try {
      const data = patternBytes(2 * FS_BYTES, 5);
      const error = (await file.write(data, 0).then(
        (n) => new Error(`write resolved with ${n}`),
        (reason: unknown) => reason,
      )) as { code?: string; bytesWritten?: number };
      expect(error).toMatchObject({ code: 'ENOSPC' });
      const size = (await file.stat()).size;
      expect(size).toBeLessThan(data.length);
      if (error.bytesWritten !== undefined) expect(error.bytesWritten).toBeLessThanOrEqual(size);
      expect(readFileSync(file.path).equals(data.subarray(0, size))).toBe(true);
    } finally {
      await file.close();
      unlinkSync(file.path);
    }
  });

  it('writing chunk by chunk until ENOSPC: every reported chunk is on disk, intact', async (test) => {
    const dir = requireMount(test);
    const file = await ctx.backend().open(join(dir, 'chunks'), 'w+');
    try {
      const chunk = 64 * 1024;
      let reported = 0;
      let failure: { code?: string } | undefined;
      for (let i = 0; i < 64 && failure === undefined; i++) {
        try {
          reported += await file.write(patternBytes(chunk, i), i * chunk);
        } catch (error) {
          failure = error as { code?: string };
        }
      }
      expect(failure).toMatchObject({ code: 'ENOSPC' });
      expect(reported).toBeGreaterThan(FS_BYTES / 2);
      const contents = readFileSync(file.path);
      expect(contents.length).toBeGreaterThanOrEqual(reported);
      for (let i = 0; i * chunk < reported; i++) {
        expect(contents.subarray(i * chunk, (i + 1) * chunk).equals(patternBytes(chunk, i)), `chunk ${i}`).toBe(true);
      }
    } finally {
      await file.close();
      unlinkSync(file.path);
    }
  });
}
