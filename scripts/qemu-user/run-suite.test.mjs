// run-suite.mjs on this machine's node (it runs anywhere; CI runs it under qemu-user):
// counts, and the emulator-gap rules (node:test; `node --test scripts/qemu-user/`).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const here = import.meta.dirname;

function runSuite(gaps) {
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-run-suite-test-'));
  try {
    writeFileSync(join(dir, 'gaps.json'), JSON.stringify(gaps));
    const res = spawnSync(process.execPath, [join(here, 'run-suite.mjs'), '--report', join(dir, 'r.json'), '--gaps', join(dir, 'gaps.json'), join(here, 'fixtures', 'gaps.fixture.mjs')], { encoding: 'utf8' });
    return { code: res.status, stdout: res.stdout, report: JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a listed gap failing as listed is a gap; failing otherwise, passing, or missing is a failure', () => {
  const { code, stdout, report } = runSuite([
    { test: 'fixture > hits the gap', error: '^ioctl ENOSYS', why: 'no ioctl' },
    { test: 'fixture > fails otherwise', error: '^ioctl ENOSYS', why: 'listed, but fails another way' },
    { test: 'fixture > was a gap but passes', error: '.', why: 'stale' },
    { test: 'fixture > not there', error: '.', why: 'renamed' },
  ]);
  assert.equal(code, 1);
  assert.deepEqual({ passed: report.passed, failed: report.failed, skipped: report.skipped, gaps: report.gaps }, { passed: 1, failed: 3, skipped: 1, gaps: 1 });
  assert.match(stdout, /emulator gap: ioctl ENOSYS \/dev\/vsock \(no ioctl\)/);
  assert.match(stdout, /passes now: remove it from the emulator gaps \(stale\)/);
  assert.match(stdout, /emulator gap not found among the tests: fixture > not there/);
});

test('without gaps every failure counts, and the exit code says so', () => {
  const { code, report } = runSuite([]);
  assert.equal(code, 1);
  assert.deepEqual({ passed: report.passed, failed: report.failed, gaps: report.gaps }, { passed: 2, failed: 2, gaps: 0 });
});
