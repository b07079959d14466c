import { writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { livenessMs, openFdCount, patternBytes, runChild } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

const CHILD_TIMEOUT_MS = 30_000;

/** Closing files and backends (also with requests in flight), EBADF afterwards, no leaks. */
export function lifecycleTests(ctx: AioSuiteContext): void {
  it('every operation after close rejects with EBADF; closing twice is a no-op', async () => {
    const file = await ctx.backend().open(ctx.path('after-close'), 'w+');
    await file.close();
    expect(file.closed).toBe(true);
    await expect(file.close()).resolves.toBeUndefined();
    const buf = Buffer.alloc(4);
    const ebadf = { code: 'EBADF' };
    await expect(file.read(buf, 0)).rejects.toMatchObject(ebadf);
    await expect(file.readv([buf], 0)).rejects.toMatchObject(ebadf);
    await expect(file.write(buf, 0)).rejects.toMatchObject(ebadf);
    await expect(file.writev([buf], 0)).rejects.toMatchObject(ebadf);
    await expect(file.fsync()).rejects.toMatchObject(ebadf);
    await expect(file.fdatasync()).rejects.toMatchObject(ebadf);
    await expect(file.stat()).rejects.toMatchObject(ebadf);
  });

  it('closing a file with requests in flight lets them finish first', async () => {
    const path = ctx.path('close-in-flight');
    const data = patternBytes(1 << 20, 3);
    writeFileSync(path, data);
    const file = await ctx.backend().open(path, 'r+');
    const buffers = Array.from({ length: 32 }, () => Buffer.alloc(1 << 20));
    const reads = buffers.map((buffer) => file.read(buffer, 0));
    const write = file.write(Buffer.from('tail'), 1 << 20);
    const closing = file.close();
    await expect(file.read(Buffer.alloc(1), 0)).rejects.toMatchObject({ code: 'EBADF' });
    expect(await Promise.all(reads)).toEqual(Array(32).fill(1 << 20));
    await expect(write).resolves.toBe(4);
    await closing;
    buffers.forEach((buffer) => expect(buffer.equals(data)).toBe(true));
  });

  it('closing the backend with requests in flight settles them and closes every file', async () => {
    const backend = await ctx.setup.setup();
    try {
      const path = ctx.path('backend-close');
      writeFileSync(path, patternBytes(1 << 20, 4));
      const files = await Promise.all([backend.open(path, 'r'), backend.open(path, 'r')]);
      const reads = files.flatMap((file) => Array.from({ length: 16 }, () => file.read(Buffer.alloc(1 << 20), 0)));
      const closing = backend.close();
      expect(await Promise.all(reads)).toEqual(Array(32).fill(1 << 20));
      await closing;
      for (const file of files) expect(file.closed).toBe(true);
      await expect(backend.open(path, 'r')).rejects.toMatchObject({ code: 'EBADF' });
      await expect(backend.close()).resolves.toBeUndefined();
      expect(backend.stats().inFlight).toBe(0);
    } finally {
      await (ctx.setup.teardown ?? ((b) => b.close()))(backend);
    }
  });

  it('leaks no fds: a backend used and closed leaves the fd count unchanged', async () => {
    const before = openFdCount();
    const backend = await ctx.setup.setup();
    const files = await Promise.all([1, 2, 3].map((i) => backend.open(ctx.path(`fds-${i}`), 'w+')));
    await Promise.all(files.map((file) => file.write(Buffer.alloc(4096, 1), 0)));
    await Promise.all(files.map((file) => file.read(Buffer.alloc(4096), 0)));
    await files[0]!.close();
    await (ctx.setup.teardown ?? ((b) => b.close()))(backend);
    expect(openFdCount()).toBe(before);
  });

  it('a child process that uses the backend exits on its own (after close, and when merely idle)', async (test) => {
    const recipe = ctx.setup.child;
    if (recipe === undefined) test.skip('no `child` recipe in the test setup');
    else {
      for (const closeBackend of [true, false]) {
        const path = ctx.path(`child-${closeBackend}`);
        const source = `
          const plugin = await import(${JSON.stringify(recipe.module)});
          const backend = await plugin[${JSON.stringify(recipe.factory)}](${JSON.stringify(recipe.options ?? {})});
          const file = await backend.open(${JSON.stringify(path)}, 'w+');
          await file.write(Buffer.alloc(65536, 7), 0);
          await Promise.all([file.read(Buffer.alloc(4096), 0), file.fdatasync()]);
          if (${closeBackend}) { await file.close(); await backend.close(); }
          console.log('done');
        `;
        const result = await runChild(source, livenessMs(ctx.setup, CHILD_TIMEOUT_MS));
        const detail = `closeBackend=${closeBackend}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
        expect(result.killed, `the child did not exit by itself\n${detail}`).toBe(false);
        expect(result.code, detail).toBe(0);
        expect(result.stdout.trim(), detail).toBe('done');
      }
    }
    // Liveness only: two child processes that each load the addon, on 2 shared cores.
  }, livenessMs(ctx.setup, 2 * CHILD_TIMEOUT_MS + 10_000));
}
