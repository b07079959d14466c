import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });

describe('@vmlink/native loader', () => {
  it('loads the built addon on Linux with every expected export', () => {
    const binding = native.loadBinding();
    for (const names of Object.values(native.expectedExports)) {
      for (const name of names) expect(binding).toHaveProperty(name);
    }
    expect(binding.errnoName(111)).toBe('ECONNREFUSED');
    expect(binding.errnoName(-2)).toBe('ENOENT');
  });

  it.each(['darwin', 'win32', 'freebsd'])('fails with ERR_VMLINK_UNSUPPORTED_PLATFORM on %s', (platform) => {
    expect(() => native.loadBinding({ platform })).toThrow(
      expect.objectContaining({ code: 'ERR_VMLINK_UNSUPPORTED_PLATFORM', message: expect.stringContaining(platform) }),
    );
    expect(native.isAvailable({ platform })).toBe(false);
  });

  it('fails with ERR_VMLINK_NATIVE_NOT_BUILT when there is no binary', () => {
    const empty = mkdtempSync(join(tmpdir(), 'vmlink-native-'));
    try {
      expect(() => native.loadBinding({ dir: empty })).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_NATIVE_NOT_BUILT' }));
    } finally {
      rmSync(empty, { recursive: true });
    }
  });
});
