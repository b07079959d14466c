// Runs vitest test files WITHOUT vitest's CLI, under a foreign-arch node (arm64 node under
// qemu-user on an x86_64 machine): vitest's CLI needs vite's native bindings (rolldown,
// lightningcss), installed for the host arch only, while its test API (@vitest/runner,
// expect) is plain JavaScript. So this drives @vitest/runner's startTests() directly on
// files scripts/arm64-qemu-user.mjs has transpiled (esbuild on the host), and writes a JSON
// summary. The test code is vitest's: describe/it/expect/hooks behave as under `vitest run`.
//
//   node run-suite.mjs --report FILE [--gaps FILE] [--test-timeout MS] [--hook-timeout MS] FILE.mjs...
//
// --gaps FILE: JSON [{ test, error, why }]: tests that hit a syscall the emulator does not
// implement (`test` is the full name, `error` a regex every error of it must match). Such a
// test failing that way is counted as a gap, not a failure; failing any other way, or
// passing (the list is stale), is a failure.
//
// VMLINK_QEMU_NODE: a program that runs this node under qemu (a wrapper script). It
// becomes process.execPath, because under qemu-user process.execPath names the arm64 ELF
// itself, which this x86_64 kernel cannot exec without a binfmt_misc handler (a fresh
// machine or container often has none): tests that spawn process.execPath get the wrapper.
import { startTests } from '@vitest/runner';
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    report: { type: 'string' },
    gaps: { type: 'string' },
    'test-timeout': { type: 'string', default: '60000' },
    'hook-timeout': { type: 'string', default: '180000' },
  },
});
if (values.report === undefined || positionals.length === 0) {
  process.stderr.write('run-suite: usage: run-suite.mjs --report FILE [--test-timeout MS] [--hook-timeout MS] FILE.mjs...\n');
  process.exit(2);
}
if (process.env.VMLINK_QEMU_NODE) process.execPath = process.env.VMLINK_QEMU_NODE;
const gaps = values.gaps === undefined ? [] : JSON.parse(readFileSync(values.gaps, 'utf8'));

/** VitestRunnerConfig with vitest's defaults, timeouts raised for emulation. */
const config = {
  root: process.cwd(),
  setupFiles: [],
  name: undefined,
  passWithNoTests: false,
  testNamePattern: undefined,
  allowOnly: false,
  sequence: { seed: Date.now(), hooks: 'stack', setupFiles: 'list' },
  chaiConfig: undefined,
  maxConcurrency: 5,
  testTimeout: Number(values['test-timeout']),
  hookTimeout: Number(values['hook-timeout']),
  retry: 0,
  includeTaskLocation: false,
  tags: [],
  tagsFilter: undefined,
  strictTags: false,
};

const mark = { pass: '\u2713', fail: '\u00d7', skip: '-', todo: '-', gap: '~' };

/** 'pass', 'fail', 'skip' or 'gap' (a known emulator gap, failing exactly as listed). */
function outcome(test) {
  const state = test.result?.state ?? test.mode;
  const gap = gaps.find((g) => g.test === fullName(test));
  if (gap === undefined) return state === 'pass' || state === 'fail' ? state : 'skip';
  test.gap = gap;
  if (state === 'pass') {
    test.gapNote = `passes now: remove it from the emulator gaps (${gap.why})`;
    return 'fail';
  }
  const errors = test.result?.errors ?? [];
  const re = new RegExp(gap.error);
  if (state === 'fail' && errors.length > 0 && errors.every((e) => re.test(String(e.message)))) return 'gap';
  return state === 'fail' ? 'fail' : 'skip';
}
const runner = {
  config,
  importFile: (file) => import(pathToFileURL(file).href),
  onAfterRunTask(test) {
    const state = outcome(test);
    const ms = test.result?.duration === undefined ? '' : ` ${Math.round(test.result.duration)}ms`;
    process.stdout.write(`  ${mark[state] ?? state} ${fullName(test)}${ms}\n`);
    if (state === 'gap') process.stdout.write(`      emulator gap: ${test.result.errors[0].message} (${test.gap.why})\n`);
    else if (test.gapNote !== undefined) process.stdout.write(`      ${test.gapNote}\n`);
    else for (const error of test.result?.errors ?? []) process.stdout.write(`      ${String(error.stack ?? error.message).split('\n').slice(0, 8).join('\n      ')}\n`);
  },
};

function fullName(task) {
  const names = [];
  for (let t = task; t !== undefined && t.type !== undefined && t.filepath === undefined; t = t.suite) names.unshift(t.name);
  return names.join(' > ');
}

function tests(task, out = []) {
  if (task.type === 'test') out.push(task);
  for (const child of task.tasks ?? []) tests(child, out);
  return out;
}

/** The file and its suites with errors of their own: a failed import or beforeAll/afterAll. */
function suiteErrors(task, out = []) {
  if (task.type !== 'test') {
    for (const error of task.result?.errors ?? []) out.push({ name: task.filepath === undefined ? fullName(task) : task.name, error });
    for (const child of task.tasks ?? []) suiteErrors(child, out);
  }
  return out;
}

const started = performance.now();
const files = await startTests(positionals, runner);
// A listed gap whose test did not run at all (renamed, removed) is stale too.
const seen = new Set(files.flatMap((f) => tests(f)).map(fullName));
const missingGaps = gaps.filter((g) => !seen.has(g.test));
for (const g of missingGaps) process.stdout.write(`  ${mark.fail} emulator gap not found among the tests: ${g.test}\n`);
const summary = { passed: 0, failed: 0, skipped: 0, gaps: 0, files: [], ms: performance.now() - started };
for (const file of files) {
  const all = tests(file);
  const counts = { passed: 0, failed: 0, skipped: 0, gaps: 0 };
  for (const t of all) {
    const state = outcome(t);
    if (state === 'pass') counts.passed++;
    else if (state === 'fail') counts.failed++;
    else if (state === 'gap') counts.gaps++;
    else counts.skipped++;
  }
  // A file that fails to load or a failing beforeAll/afterAll fails the file: one failure
  // per error (its tests show as skipped).
  for (const { name, error } of suiteErrors(file)) {
    counts.failed++;
    process.stdout.write(`  ${mark.fail} ${name}: ${String(error.stack ?? error.message).split('\n').slice(0, 8).join('\n      ')}\n`);
  }
  summary.passed += counts.passed;
  summary.failed += counts.failed;
  summary.skipped += counts.skipped;
  summary.gaps += counts.gaps;
  summary.files.push({ file: file.filepath, ...counts, ms: file.result?.duration ?? 0 });
}
summary.failed += missingGaps.length;
writeFileSync(values.report, JSON.stringify(summary));
// As vitest does after a run: a handle a test left open must not keep CI waiting.
process.exit(summary.failed > 0 ? 1 : 0);
