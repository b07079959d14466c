import { afterEach, describe, expect, it } from 'vitest';
import { createBackend, type BackendOptions } from '../src/index.js';

const realPlatform = Object.getOwnPropertyDescriptor(process, 'platform')!;

function pretendPlatform(platform: string): void {
  Object.defineProperty(process, 'platform', { ...realPlatform, value: platform });
}

afterEach(() => {
  Object.defineProperty(process, 'platform', realPlatform);
});

describe('createBackend', () => {
  it("'fs' gives the portable backend with its capabilities", async () => {
    const backend = await createBackend('fs');
    try {
      expect(backend.name).toBe('fs');
      expect(backend.capabilities).toMatchObject({ nowait: false, batch: false, cancel: false });
    } finally {
      await backend.close();
    }
  });

  it("'threadpool' loads the plugin (built here) and passes options", async () => {
    const backend = await createBackend('threadpool', { threads: 3 });
    try {
      expect(backend.name).toBe('threadpool');
      expect(backend.capabilities).toMatchObject({ batch: true, cancel: true });
    } finally {
      await backend.close();
    }
  });

  it("'auto' picks the thread pool on Linux with the addon, 'fs' elsewhere, and says which and why", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const onLinux = await createBackend('auto');
      expect(onLinux.name).toBe('threadpool');
      expect(onLinux.selection).toMatchObject({ requested: 'auto', picked: 'threadpool', fellBack: false, reason: expect.stringContaining('linux') });
      await onLinux.close();
      pretendPlatform('darwin');
      const elsewhere = await createBackend();
      const again = await createBackend('auto');
      expect(elsewhere.name).toBe('fs');
      expect(elsewhere.selection).toMatchObject({ requested: 'auto', picked: 'fs', fellBack: true, reason: expect.stringContaining('darwin') });
      await elsewhere.close();
      await again.close();
      await new Promise((resolve) => setImmediate(resolve)); // 'warning' is emitted on the next tick
      const fallbacks = warnings.filter((w) => (w as { code?: string }).code === 'VMLINK_AIO_FALLBACK');
      expect(fallbacks).toHaveLength(1); // once per process, not per backend
      expect(fallbacks[0]!.message).toContain("fell back to the 'fs' backend");
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a backend asked for by name says so', async () => {
    const backend = await createBackend('fs');
    expect(backend.selection).toEqual({ requested: 'fs', picked: 'fs', reason: 'asked for by name', fellBack: false });
    await backend.close();
  });

  it('naming a native backend off Linux fails with ERR_VMLINK_UNSUPPORTED_PLATFORM', async () => {
    pretendPlatform('win32');
    await expect(createBackend('threadpool')).rejects.toMatchObject({ code: 'ERR_VMLINK_UNSUPPORTED_PLATFORM', message: expect.stringContaining('threadpool') });
    await expect(createBackend('iosubmit')).rejects.toMatchObject({ code: 'ERR_VMLINK_UNSUPPORTED_PLATFORM', message: expect.stringContaining('win32') });
  });

  it('rejects unknown names and bad options', async () => {
    await expect(createBackend('uring' as 'fs')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('uring') });
    await expect(createBackend('fs', 5 as unknown as BackendOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(createBackend('threadpool', { threads: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });
});
