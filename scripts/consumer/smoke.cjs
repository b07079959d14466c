// Runs in the consumer project (scripts/consumer-test.mjs): require() of every entry point
// (CommonJS builds), the same export names as import(), and real calls through require().
'use strict';
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

async function main() {
  const entryPoints = require('./entry-points.json');
  let failed = 0;
  for (const { specifier, require: offersRequire } of entryPoints) {
    if (!offersRequire) {
      console.log(`  --   require('${specifier}'): ESM only (its exports entry has no require condition)`);
      continue;
    }
    try {
      const required = require(specifier);
      const imported = await import(specifier);
      const requiredNames = Object.keys(required).sort();
      // Node 24+ adds a 'module.exports' name when import() loads a CommonJS module.
      const importedNames = Object.keys(imported).filter((name) => name !== 'default' && name !== 'module.exports').sort();
      assert.ok(requiredNames.length > 0, `${specifier}: require() gave no exports`);
      assert.deepEqual(requiredNames, importedNames, `${specifier}: require() and import() export different names`);
      console.log(`  ok   require('${specifier}'): ${requiredNames.length} exports, same as import()`);
    } catch (error) {
      failed++;
      console.log(`  FAIL require('${specifier}'): ${String(error.message).split('\n')[0]}`);
    }
  }
  if (failed > 0) process.exitCode = 1;
  assert.equal(require('@vmlink/native').loadBinding().errnoName(-2), 'ENOENT');
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-consumer-cjs-'));
  try {
    const file = join(dir, 'data.bin');
    writeFileSync(file, 'abcdef');
    const backend = require('@vmlink/aio-threadpool').createThreadPoolBackend({ threads: 2 });
    const handle = await backend.open(file, 'r');
    const buffer = Buffer.alloc(16);
    assert.equal(await handle.read(buffer, 2), 4);
    assert.equal(buffer.subarray(0, 4).toString(), 'cdef');
    await backend.close();
    console.log('  ok   CommonJS calls: @vmlink/native errnoName, @vmlink/aio-threadpool read at offset 2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.log(`  FAIL ${error.stack ?? error}`);
  process.exitCode = 1;
});
