// Runs vitest on a given Node line: the line's node starts vitest, so vitest's workers
// (forked from process.execPath) and anything a test spawns as "node" (PATH) run on it.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');
const vitestBin = join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs');

/** The environment for a line: its node first on PATH, nothing else changed. */
export function lineEnv(node, env = process.env) {
  return { ...env, PATH: `${dirname(node)}${delimiter}${env.PATH ?? ''}` };
}

function runInherit(file, args, env, stdout = 'inherit') {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: repoRoot, env, stdio: ['ignore', stdout, 'inherit'] });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Counts from vitest's JSON report, or undefined when it wrote none (it crashed before the end). */
async function readReport(path) {
  try {
    const r = JSON.parse(await readFile(path, 'utf8'));
    return { passed: r.numPassedTests, failed: r.numFailedTests, skipped: r.numPendingTests + r.numTodoTests, failedFiles: r.testResults.filter((t) => t.status === 'failed').map((t) => t.name) };
  } catch {
    return undefined;
  }
}

/**
 * `vitest run ARGS` under `node`; resolves { code, ms, counts }. The JSON report goes to a
 * temp file of its own, so the root config's .vitest-results.json (CI) is left alone.
 */
export async function runVitest(node, args) {
  const dir = await mkdtemp(join(tmpdir(), 'vmlink-node-line-'));
  const report = join(dir, 'report.json');
  const started = performance.now();
  try {
    const code = await runInherit(node, [vitestBin, 'run', ...args, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`], lineEnv(node));
    return { code, ms: performance.now() - started, counts: await readReport(report) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Guest test files (boot a QEMU guest) by the repository's naming rule. */
export const isGuestTestFile = (file) => /\.vm\.test\.[cm]?[jt]s$/.test(file);

/**
 * The host suite as explicit files: every test file vitest's own config collects, minus
 * guest files. Not `--exclude '**\/*.vm.test.ts'`: vitest drops a CLI --exclude for any
 * project whose config sets its own `exclude` (testvm's does), so that form still ran
 * testvm's four guest files, ~40% of each line's host-suite time. Paths are relative to
 * the repository (vitest takes them as filters).
 */
export async function hostTestFiles(node = process.execPath) {
  const dir = await mkdtemp(join(tmpdir(), 'vmlink-node-list-'));
  const out = join(dir, 'list.json');
  try {
    const code = await runInherit(node, [vitestBin, 'list', '--filesOnly', `--json=${out}`], lineEnv(node), 'ignore');
    if (code !== 0) throw new Error(`vitest list --filesOnly failed (exit ${code})`);
    return selectHostFiles(JSON.parse(await readFile(out, 'utf8')).map((entry) => entry.file));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Pure part of hostTestFiles: absolute paths -> sorted repo-relative non-guest files. */
export function selectHostFiles(files, root = repoRoot) {
  const guest = files.filter(isGuestTestFile);
  const host = files.filter((f) => !isGuestTestFile(f)).map((f) => relative(root, f));
  if (host.length === 0) throw new Error('vitest listed no host test files');
  // vitest matches filters as substrings: a host path inside a guest path would pull it in.
  const clash = host.find((h) => guest.some((g) => g.includes(h)));
  if (clash !== undefined) throw new Error(`host test filter ${clash} also matches a guest test file; rename one of them`);
  return [...new Set(host)].sort();
}

/**
 * Runs the probe test the same way, and returns what the vitest worker saw: its
 * process.version, execPath and the `node` on its PATH.
 */
export async function probeWorker(node) {
  const dir = await mkdtemp(join(tmpdir(), 'vmlink-node-probe-'));
  const out = join(dir, 'probe.json');
  try {
    const env = { ...lineEnv(node), VMLINK_NODE_LINE_PROBE: out };
    const code = await new Promise((resolve, reject) => {
      const child = spawn(node, [vitestBin, 'run', '--config', join(here, 'vitest.probe.config.mjs'), '--reporter=dot'], { cwd: here, env, stdio: ['ignore', 'ignore', 'inherit'] });
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`the vitest probe failed under ${node} (exit ${code})`);
    return JSON.parse(await readFile(out, 'utf8'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
