import { constants } from 'node:fs';
import { join } from 'node:path';
import { O_DIRECT, type AioFile } from '@vmlink/aio';
import { afterAll, describe, expect, it } from 'vitest';
import { createIoSubmitBackend } from '../src/index.js';
import { scratchDir, writeRandomFile } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

/** 32 loops of back-to-back requests until a timer fires; resolves to the requests done. */
async function untilTimer(request: () => Promise<number>): Promise<number> {
  let stop = false;
  let done = 0;
  setTimeout(() => (stop = true), 50);
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (!stop) {
        await request();
        done++;
      }
    }),
  );
  return done;
}

// Requests that complete inside io_submit (page-cache hits; appends in strict mode) must
// not keep the completion callback busy forever: timers still fire. Starvation would make
// these tests hang until vitest's timeout.
describe('the event loop keeps turning while completions arrive inside io_submit', () => {
  it.each([false, true])('warm buffered reads (strict: %s)', async (strict) => {
    const path = join(scratch.dir, `warm-${strict}.bin`);
    writeRandomFile(path, 1 << 20);
    const backend = await createIoSubmitBackend({ strict });
    try {
      const file: AioFile = await backend.open(path, 'r');
      const buffer = Buffer.alloc(4096);
      const done = await untilTimer(() => file.read(buffer, 0));
      expect(done).toBeGreaterThan(0);
      expect(backend.stats().nowaitFallbacks).toBeLessThanOrEqual(1);
    } finally {
      await backend.close();
    }
  });

  it('O_DIRECT appends in strict mode (each completes before io_submit returns)', async () => {
    const path = join(scratch.dir, 'append.bin');
    writeRandomFile(path, 4096);
    const backend = await createIoSubmitBackend({ strict: true });
    try {
      const file = await backend.open(path, constants.O_RDWR | O_DIRECT);
      const { allocAligned } = await import('@vmlink/aio');
      const block = allocAligned(4096);
      let next = 1;
      const done = await untilTimer(() => file.write(block, 4096 * next++));
      expect(done).toBeGreaterThan(0);
    } finally {
      await backend.close();
    }
  });
});
