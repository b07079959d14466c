import { constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { allocAligned, O_DIRECT } from '@vmlink/aio';
import { afterAll, describe, expect, it } from 'vitest';
import { createIoSubmitBackend } from '../src/index.js';
import { scratchDir, writeRandomFile } from './helpers.js';

const scratch = scratchDir();
afterAll(() => scratch.remove());

/** Spins for `us` microseconds: continuation work that takes real time. */
function busy(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // spin
  }
}

describe('completion budget on a real file', () => {
  it('settles a flood of completions across loop turns when their continuations exceed completionBudgetUs', async () => {
    const path = join(scratch.dir, 'flood.bin');
    const data = writeRandomFile(path, 1 << 20);
    readFileSync(path); // warm: every NOWAIT read completes inside io_submit
    const backend = await createIoSubmitBackend({ maxInFlight: 128, completionBudgetUs: 200, bufferedReads: 'nowait' });
    try {
      const file = await backend.open(path, 'r');
      const events: string[] = [];
      let turnSeen = false;
      // 128 reads made in one tick: their completions are reaped in one wake-up, and each
      // continuation spins 50 us, so settling all of them (6.4 ms) needs several turns.
      const reads = Array.from({ length: 128 }, async (_, i) => {
        const buffer = Buffer.alloc(4096);
        expect(await file.read(buffer, i * 4096)).toBe(4096);
        expect(buffer.equals(data.subarray(i * 4096, (i + 1) * 4096))).toBe(true);
        if (!turnSeen) {
          turnSeen = true;
          setImmediate(() => events.push('loop turn'));
        }
        events.push('read');
        busy(50);
      });
      await Promise.all(reads);
      expect(backend.completionTurnsDeferred).toBeGreaterThan(0);
      // The loop turned (setImmediate ran) before the last completion was settled.
      expect(events.indexOf('loop turn')).toBeGreaterThan(0);
      expect(events.indexOf('loop turn')).toBeLessThan(events.length - 1);
      expect(events.filter((e) => e === 'read')).toHaveLength(128);
      await file.close();
    } finally {
      await backend.close();
    }
  });

  it('with a budget none of it exceeds, settles one wake-up in one turn', async () => {
    const path = join(scratch.dir, 'no-flood.bin');
    writeRandomFile(path, 256 * 1024);
    readFileSync(path);
    const backend = await createIoSubmitBackend({ completionBudgetUs: 1_000_000, bufferedReads: 'nowait' });
    try {
      const file = await backend.open(path, 'r');
      await Promise.all(Array.from({ length: 64 }, (_, i) => file.read(Buffer.alloc(4096), i * 4096)));
      expect(backend.completionTurnsDeferred).toBe(0);
      await file.close();
    } finally {
      await backend.close();
    }
  });
});

describe('O_DIRECT requests held for a completion (directBatch)', () => {
  it.each([16, 1, 0])('directBatch %i: 2000 reads at 48 in flight all settle with the right bytes', async (directBatch) => {
    const path = join(scratch.dir, `held-${directBatch}.bin`);
    const data = writeRandomFile(path, 4 << 20);
    const backend = await createIoSubmitBackend({ directBatch });
    try {
      const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      let next = 0;
      await Promise.all(
        Array.from({ length: 48 }, async () => {
          const buffer = allocAligned(4096, file.alignment.memory);
          while (next < 2000) {
            const block = (next++ * 7919) % 1024;
            expect(await file.read(buffer, block * 4096)).toBe(4096);
            expect(Buffer.from(buffer).equals(data.subarray(block * 4096, (block + 1) * 4096))).toBe(true);
          }
        }),
      );
      const stats = backend.stats();
      expect(stats.completed).toBe(2000);
      expect(stats.inFlight).toBe(0);
      await file.close();
    } finally {
      await backend.close();
    }
  });

  it('a lone request behind a busy device goes with the next completion', async () => {
    const path = join(scratch.dir, 'lone.bin');
    const data = writeRandomFile(path, 1 << 20);
    const backend = await createIoSubmitBackend({ directBatch: 4, directSubmitThreshold: 4 });
    try {
      const file = await backend.open(path, constants.O_RDONLY | O_DIRECT);
      const buffers = Array.from({ length: 5 }, () => allocAligned(4096, file.alignment.memory));
      // Four go at once (directSubmitThreshold); the fifth finds 4 in the kernel and waits.
      const reads = buffers.map((buffer, i) => file.read(buffer, i * 8192));
      expect(await Promise.all(reads)).toEqual([4096, 4096, 4096, 4096, 4096]);
      buffers.forEach((buffer, i) => expect(Buffer.from(buffer).equals(data.subarray(i * 8192, i * 8192 + 4096))).toBe(true));
      expect(backend.stats().batchSize).toMatchObject({ count: 2, max: 4, min: 1 });
      await file.close();
    } finally {
      await backend.close();
    }
  });
});
