import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// Where @vmlink/native's addon cannot load (not built, not Linux), Connections work and
// `peer` is undefined: never a made-up identity. A child process gets a stand-in
// @vmlink/native (TEST DOUBLE: isAvailable() false) through require.cache.
const dir = mkdtempSync(join(tmpdir(), 'vmlink-unix-noaddon-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const packageDir = fileURLToPath(new URL('..', import.meta.url));

describe('without the native addon', () => {
  it('dial and accept work; peer is undefined on both ends', async () => {
    const preload = join(dir, 'no-native.cjs');
    writeFileSync(
      preload,
      `const path = require.resolve('@vmlink/native', { paths: [${JSON.stringify(packageDir)}] });
const unavailable = () => { throw Object.assign(new Error('no addon here'), { code: 'ERR_VMLINK_NATIVE_NOT_BUILT' }); };
const fake = { isAvailable: () => false, loadBinding: unavailable, expectedExports: {} };
require.cache[path] = { id: path, filename: path, path, loaded: true, exports: fake, children: [], paths: [] };`,
    );
    const script = `
const { unix } = await import(${JSON.stringify(join(packageDir, 'dist/index.js'))});
const t = unix();
const l = await t.listen('unix:${join(dir, 's.sock')}');
const accepted = new Promise((r) => l.once('connection', r));
const c = await t.dial(l.address());
const s = await accepted;
c.end('x'); s.end('y');
console.log(JSON.stringify({ client: c.peer ?? null, server: s.peer ?? null, hasClient: 'peer' in c, hasServer: 'peer' in s }));
c.destroy(); s.destroy(); await l.close();`;
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--require', preload, '--input-type=module', '-e', script], { cwd: packageDir }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
      );
    });
    expect(JSON.parse(output)).toEqual({ client: null, server: null, hasClient: false, hasServer: false });
  });
});
