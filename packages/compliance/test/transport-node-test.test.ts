import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The suite's second entry point: node:test, as guests run it. A child `node --test`
// runs it against the unix transport with halfClose and multiConnection declared
// absent, which must show as visible skips (with their reasons) and still pass.
const dir = mkdtempSync(join(tmpdir(), 'vmlink-compliance-node-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The generated file lives in a temp dir, outside any node_modules: import by URL.
const require = createRequire(import.meta.url);
const esmUrl = (specifier: string): string => pathToFileURL(require.resolve(specifier).replace(/\.cjs$/, '.js')).href;

const FILE = `
import * as nodeTest from 'node:test';
import { join } from 'node:path';
import { describeTransportCompliance, startLocalPeer } from '${esmUrl('@vmlink/compliance/transport')}';
import { unix } from '${esmUrl('@vmlink/transport-unix')}';

const base = unix();
// Declaring less than the channel can do is allowed: the suite must only skip.
const transport = Object.assign(Object.create(base), {
  capabilities: { ...base.capabilities, halfClose: false, multiConnection: false },
});
let n = 0;
const fresh = () => 'unix:' + join(${JSON.stringify(dir)}, 's' + n++ + '.sock');
describeTransportCompliance({
  transport,
  startPeer: () => startLocalPeer(transport, fresh()),
  listenAddress: fresh,
  unreachableAddress: () => 'unix:' + join(${JSON.stringify(dir)}, 'nobody.sock'),
  child: { module: '@vmlink/transport-unix', factory: 'unix' },
}, nodeTest);
`;

describe('transport compliance under node:test', () => {
  it('runs, passes, and reports capability skips with their reasons', async () => {
    const file = join(dir, 'unix-declared-less.test.mjs');
    writeFileSync(file, FILE);
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', file], { cwd: process.cwd() });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code, output).toBe(0);
    expect(output).toMatch(/# SKIP capabilities\.halfClose is false/);
    expect(output).toMatch(/# SKIP capabilities\.multiConnection is false/);
    expect(output).toMatch(/# SKIP this channel has no address where a dial stalls/);
    expect(output).toMatch(/ok \d+ - echo: 16777216 bytes each way arrive byte-exact/);
    expect(output).toMatch(/# fail 0/);
  }, 300_000);
});
