/**
 * The suite is written once against this small adapter so the same checks run under
 * vitest on the host and under `node:test` inside a guest VM (where vitest is not run).
 * Pass either framework's own functions: `import * as vitest from 'vitest'` or
 * `import * as nodeTest from 'node:test'` both fit.
 */

/** A test or hook body: the suite awaits it. */
export type Body = () => Promise<void>;

/** The part of vitest's API the suite uses. */
export interface VitestApi {
  describe(name: string, fn: () => void): unknown;
  it: { (name: string, fn: Body, timeout?: number): unknown; skip(name: string, fn: () => void): unknown };
  beforeAll(fn: Body, timeout?: number): unknown;
  afterAll(fn: Body, timeout?: number): unknown;
}

/** The part of `node:test`'s API the suite uses. */
export interface NodeTestApi {
  describe(name: string, fn: () => void): unknown;
  it(name: string, options: { timeout?: number; skip?: string | boolean }, fn: Body): unknown;
  before(fn: Body, options?: { timeout?: number }): unknown;
  after(fn: Body, options?: { timeout?: number }): unknown;
}

export type TestApi = VitestApi | NodeTestApi;

/** What the suite calls: one shape whatever the framework. */
export interface Runner {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: Body): void;
  /** A test that shows up as skipped, with the reason in its report. */
  skip(name: string, reason: string): void;
  before(fn: Body): void;
  after(fn: Body): void;
}

function isVitest(api: TestApi): api is VitestApi {
  return typeof (api as Partial<VitestApi>).beforeAll === 'function';
}

export function toRunner(api: TestApi, timeoutMs: number): Runner {
  if (isVitest(api)) {
    return {
      describe: (name, fn) => void api.describe(name, fn),
      it: (name, fn) => void api.it(name, () => fn(), timeoutMs),
      skip: (name, reason) => void api.it.skip(`${name} (skipped: ${reason})`, () => {}),
      before: (fn) => void api.beforeAll(() => fn(), timeoutMs),
      after: (fn) => void api.afterAll(() => fn(), timeoutMs),
    };
  }
  return {
    describe: (name, fn) => void api.describe(name, fn),
    it: (name, fn) => void api.it(name, { timeout: timeoutMs }, () => fn()),
    skip: (name, reason) => void api.it(name, { skip: reason }, async () => {}),
    before: (fn) => void api.before(() => fn(), { timeout: timeoutMs }),
    after: (fn) => void api.after(() => fn(), { timeout: timeoutMs }),
  };
}
