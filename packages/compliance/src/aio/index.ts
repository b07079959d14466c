/**
 * @vmlink/compliance/aio: the suite every AioBackend runs from its own tests.
 *
 *   import { describeAioBackend } from '@vmlink/compliance/aio';
 *   describeAioBackend('threadpool', { setup: () => createThreadPoolBackend() });
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { createFsBackend, type AioBackend } from '@vmlink/aio';
import { basicTests } from './basics.js';
import { concurrencyTests } from './concurrency.js';
import { directTests } from './direct.js';
import { enospcTests } from './enospc.js';
import { probeDirect } from './helpers.js';
import { lifecycleTests } from './lifecycle.js';
import { randomOpTests } from './random-ops.js';
import { spaceTests } from './space.js';
import type { AioSuiteContext, AioTestSetup } from './setup.js';

export type { AioSuiteContext, AioTestSetup } from './setup.js';
export { collectGarbage, openFdCount, patternBytes, probeDirect, runChild, seededRandom, type ChildResult } from './helpers.js';

/** Registers the whole AIO compliance suite for one backend, under `describe(name)`. */
export function describeAioBackend(name: string, setup: AioTestSetup): void {
  describe(`aio compliance: ${name}`, () => {
    let backend: AioBackend | undefined;
    let reference: AioBackend | undefined;
    let dir: string | undefined;
    let directReason: string | undefined;
    let counter = 0;

    beforeAll(async () => {
      dir = mkdtempSync(join(setup.dir ?? tmpdir(), `vmlink-aio-${name.replace(/\W+/g, '-')}-`));
      directReason = probeDirect(dir);
      backend = await setup.setup();
      reference = createFsBackend();
    });

    afterAll(async () => {
      if (backend !== undefined) await (setup.teardown ?? ((b: AioBackend) => b.close()))(backend);
      await reference?.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    const ctx: AioSuiteContext = {
      setup,
      backend: () => required(backend, 'backend'),
      reference: () => required(reference, 'reference backend'),
      path: (file) => join(required(dir, 'test directory'), `${++counter}-${file}`),
      directUnsupported: () => directReason,
    };

    describe('basics', () => basicTests(ctx));
    describe('O_DIRECT', () => directTests(ctx));
    describe('concurrency', () => concurrencyTests(ctx));
    describe('lifecycle', () => lifecycleTests(ctx));
    describe('differential', () => randomOpTests(ctx));
    describe('ENOSPC', () => enospcTests(ctx));
    describe('fallocate, truncate, discard', () => spaceTests(ctx));
  });
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`aio compliance: the ${what} is not ready (did beforeAll fail?)`);
  return value;
}
