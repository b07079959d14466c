// Polling wired into the backend (polling.ts deciding, the addon waiting), on real files
// and real workers: stats().polling shows what it did.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBackend, type AioBackend, type AioFile, type PollingStats } from '@vmlink/aio';
import { allowedCpus, createThreadPoolBackend } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-threadpool-polling-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const path = join(dir, 'data');
const allowed = allowedCpus();
const twoCpus = allowed !== undefined && allowed.length >= 2 ? allowed : undefined;
const FILE_SIZE = 1 << 20;
writeFileSync(path, Buffer.alloc(FILE_SIZE, 3));

function pollingOf(backend: AioBackend): PollingStats {
  const polling = backend.stats().polling;
  if (polling === undefined) throw new Error('the thread pool reports no polling in stats()');
  return polling;
}

/** `depth` loops, each reading 4 KiB after its previous read, `perLoop` times; checks each count. */
async function closedLoop(file: AioFile, depth: number, perLoop: number, during?: () => void): Promise<void> {
  await Promise.all(
    Array.from({ length: depth }, async (_, loop) => {
      const buffer = Buffer.alloc(4096);
      for (let i = 0; i < perLoop; i++) {
        expect(await file.read(buffer, ((loop * perLoop + i) * 4096) % FILE_SIZE)).toBe(4096);
        if (loop === 0 && i === perLoop >> 1) during?.();
      }
    }),
  );
}

// cachedReadsOnLoop off: every read goes to a worker (a warm file would be read on the loop thread).
describe('thread pool polling (real files, real workers)', () => {
  it('one request in flight at a time: polling is on and its waits see completions', async () => {
    const backend = createThreadPoolBackend({ cachedReadsOnLoop: false, pollUs: 5000, pollWhenInFlightAtMost: 2 });
    try {
      expect(pollingOf(backend)).toEqual({ on: false, polls: 0, hits: 0, spentUs: 0 });
      const file = await backend.open(path, 'r');
      await closedLoop(file, 1, 200);
      const polling = pollingOf(backend);
      expect(polling.on).toBe(true);
      // Without polling there are none. How many of the 200 is timing: a loop turn that
      // finds other I/O ready (vitest's own channel, under CI load) does not look at all.
      expect(polling.hits).toBeGreaterThanOrEqual(20);
      await file.close();
    } finally {
      await backend.close();
    }
  });

  it('more requests in flight than pollWhenInFlightAtMost, the workers anywhere: off while they are', async () => {
    const backend = createThreadPoolBackend({ cachedReadsOnLoop: false, pollUs: 5000, pollWhenInFlightAtMost: 2, workerCpus: 'any' });
    try {
      const file = await backend.open(path, 'r');
      let midway: PollingStats | undefined;
      await closedLoop(file, 8, 100, () => (midway = pollingOf(backend)));
      expect(midway?.on).toBe(false);
      await file.close();
    } finally {
      await backend.close();
    }
  });

  // Two CPUs at least: workers held to one of them leave the loop thread the other.
  it.skipIf(twoCpus === undefined)('workers held off one of the CPUs: the loop thread polls at any depth, unless pollLoopWhileWorkersHeld is false', async () => {
    const [, workerCpu] = twoCpus ?? [];
    for (const pollLoopWhileWorkersHeld of [true, false]) {
      const backend = createThreadPoolBackend({ cachedReadsOnLoop: false, pollUs: 5000, pollWhenInFlightAtMost: 2, workerCpus: [workerCpu ?? 0], pollLoopWhileWorkersHeld });
      try {
        const file = await backend.open(path, 'r');
        let midway: PollingStats | undefined;
        await closedLoop(file, 8, 100, () => (midway = pollingOf(backend)));
        expect(midway?.on, `pollLoopWhileWorkersHeld ${pollLoopWhileWorkersHeld}`).toBe(pollLoopWhileWorkersHeld);
        // Midway all 8 loops are still going: the deep polling has looked by then.
        if (pollLoopWhileWorkersHeld) expect(midway?.polls).toBeGreaterThan(0);
        await file.close();
      } finally {
        await backend.close();
      }
    }
  });

  it('pollUs 0 never polls; createBackend passes the polling options through', async () => {
    for (const backend of [createThreadPoolBackend({ cachedReadsOnLoop: false, pollUs: 0 }), await createBackend('threadpool', { cachedReadsOnLoop: false, pollUs: 0 })]) {
      try {
        const file = await backend.open(path, 'r');
        await closedLoop(file, 1, 50);
        expect(pollingOf(backend)).toEqual({ on: false, polls: 0, hits: 0, spentUs: 0 });
        await file.close();
      } finally {
        await backend.close();
      }
    }
    await expect(createBackend('threadpool', { pollUs: -1 })).rejects.toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.pollUs') }));
  });
});
