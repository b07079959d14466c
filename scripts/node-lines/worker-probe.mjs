// A vitest test file (see vitest.probe.config.mjs), run by node-lines.mjs with the same launcher as the real suite: proves that vitest's
// workers (not only its main process) run on the Node line under test.
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

it('reports the worker\'s node', () => {
  const out = process.env.VMLINK_NODE_LINE_PROBE;
  expect(out, 'VMLINK_NODE_LINE_PROBE names the report file').toBeTruthy();
  // `node` on PATH is what tests that spawn "node" get; it must be the same line.
  const onPath = execFileSync('node', ['-p', 'process.version'], { encoding: 'utf8' }).trim();
  writeFileSync(out, JSON.stringify({ version: process.version, execPath: process.execPath, onPath, napi: process.versions.napi }));
});
