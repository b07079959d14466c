import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInVm, startVm, TestVmErrorCode } from '../src/index.js';
import { BOOT_TIMEOUT_MS, fixtures, formatMs, repoRoot } from './helpers.js';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(100);
  }
}

describe('bad input is refused with a coded error before anything starts', () => {
  it('a share folder that does not exist', async () => {
    await expect(startVm({ share: '/nonexistent/vmlink-share' })).rejects.toMatchObject({
      code: TestVmErrorCode.SHARE_NOT_FOUND,
      message: expect.stringContaining('/nonexistent/vmlink-share'),
    });
  });

  it.each(['/', '/usr', '/proc'])('a share that would hide the guest system (%s)', async (path) => {
    await expect(startVm({ share: path })).rejects.toMatchObject({ code: TestVmErrorCode.BAD_SHARE });
  });

  it.each(['', 'a/b', 'has space', '..', 'x'.repeat(256), 'org.vmlink.testvm.control', 'tab\tname'])(
    'port name %j',
    async (name) => {
      await expect(startVm({ ports: [name] })).rejects.toMatchObject({ code: TestVmErrorCode.BAD_PORT_NAME });
    },
  );

  it('the same port name twice', async () => {
    await expect(startVm({ ports: ['org.x.a', { name: 'org.x.a' }] })).rejects.toMatchObject({ code: TestVmErrorCode.BAD_PORT_NAME });
  });

  it('a QEMU binary that does not exist, named or missing from PATH', async () => {
    await expect(startVm({ qemuBinary: 'qemu-system-vmlink-missing' })).rejects.toMatchObject({
      code: TestVmErrorCode.QEMU_NOT_FOUND,
      message: expect.stringContaining('apt-get install -y qemu-system-x86'),
    });
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(startVm()).rejects.toMatchObject({ code: TestVmErrorCode.QEMU_NOT_FOUND });
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it('no kernel in the cache and no apt to fetch one', async () => {
    // A PATH with QEMU but without apt-cache/apt-get, and an empty cache.
    const dir = await mkdtemp(join(tmpdir(), 'vmlink-testvm-noapt-'));
    const savedPath = process.env.PATH;
    const savedCache = process.env.VMLINK_TESTVM_CACHE;
    try {
      await symlink('/usr/bin/qemu-system-x86_64', join(dir, 'qemu-system-x86_64'));
      process.env.PATH = dir;
      process.env.VMLINK_TESTVM_CACHE = join(dir, 'cache');
      await expect(startVm()).rejects.toMatchObject({
        code: TestVmErrorCode.KERNEL_NOT_FOUND,
        message: expect.stringContaining('apt-cache depends linux-image-amd64'),
      });
    } finally {
      process.env.PATH = savedPath;
      if (savedCache === undefined) delete process.env.VMLINK_TESTVM_CACHE;
      else process.env.VMLINK_TESTVM_CACHE = savedCache;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a program for withPrograms that the host does not have', async () => {
    await expect(startVm({ withPrograms: ['vmlink-no-such-program'] })).rejects.toMatchObject({
      code: TestVmErrorCode.PROGRAM_NOT_FOUND,
      message: expect.stringContaining('vmlink-no-such-program'),
    });
  });

  it('bad numbers', async () => {
    await expect(startVm({ memoryMiB: 1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(startVm({ cpus: 1.5 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });
});

describe('nothing survives a failed, aborted or killed VM', () => {
  // Each VM makes its temp folder under os.tmpdir(): point that at a private folder so
  // the test can see that nothing is left behind.
  let privateTmp: string;
  let savedTmp: string | undefined;

  beforeEach(async () => {
    privateTmp = await mkdtemp(join(tmpdir(), 'vmlink-testvm-lifecycle-'));
    savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
  });

  afterEach(async () => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    await rm(privateTmp, { recursive: true, force: true });
  });

  it('an already aborted signal rejects with AbortError', async () => {
    await expect(startVm({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(await readdir(privateTmp)).toEqual([]);
  });

  it('an abort during the boot kills QEMU and removes its temp folder', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1500);
    await expect(startVm({ signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(await readdir(privateTmp)).toEqual([]);
  });

  it('a guest that is not ready in time fails with ERR_VMLINK_TESTVM_BOOT_TIMEOUT', async () => {
    await expect(startVm({ timeoutMs: 1500 })).rejects.toMatchObject({ code: TestVmErrorCode.BOOT_TIMEOUT });
    expect(await readdir(privateTmp)).toEqual([]);
  });

  it('a QEMU that dies at once fails with ERR_VMLINK_TESTVM_BOOT_FAILED quoting what it said', async () => {
    const fakeQemu = join(privateTmp, 'fake-qemu');
    await writeFile(fakeQemu, '#!/bin/sh\necho "fake qemu: no machine for you" >&2\nexit 1\n');
    await chmod(fakeQemu, 0o755);
    await expect(startVm({ qemuBinary: fakeQemu })).rejects.toMatchObject({
      code: TestVmErrorCode.BOOT_FAILED,
      message: expect.stringMatching(/exited with code 1.*fake qemu: no machine for you/s),
    });
    expect(await readdir(privateTmp)).toEqual(['fake-qemu']);
  });

  /**
   * A QEMU stand-in whose first `hangingBoots` runs act as a guest kernel that hung in its
   * boot (the CI console line, then nothing, for good); later runs exec the real QEMU.
   * Each run's pid goes to `pids`.
   */
  async function hangingQemu(hangingBoots: number): Promise<{ path: string; pids: () => Promise<number[]> }> {
    const path = join(privateTmp, 'hanging-qemu');
    const runs = join(privateTmp, 'hanging-qemu.pids');
    await writeFile(
      path,
      `#!/bin/sh
echo $$ >> ${runs}
n=$(wc -l < ${runs})
if [ "$n" -le ${hangingBoots} ]; then
  for a in "$@"; do case "$a" in file:*console.log) console="\${a#file:}";; esac; done
  echo "[   48.216412] watchdog: BUG: soft lockup - CPU#1 stuck for 45s! [swapper/0:1]" >> "$console"
  exec sleep 600
fi
exec qemu-system-x86_64 "$@"
`,
    );
    await chmod(path, 0o755);
    const pids = async (): Promise<number[]> => (await readFile(runs, 'utf8')).trim().split('\n').map(Number);
    return { path, pids };
  }

  it(
    'a guest kernel that hangs in its boot is killed at the hang line and booted once more: the second boot serves',
    async () => {
      const fake = await hangingQemu(1);
      const started = performance.now();
      const vm = await startVm({ qemuBinary: fake.path, timeoutMs: BOOT_TIMEOUT_MS });
      try {
        expect(vm.timings.bootAttempts).toBe(2);
        expect((await vm.run('echo', ['up'])).stdout).toBe('up\n');
        const [hung] = await fake.pids();
        // Killed when its console said so, not at the timeout (which has not passed).
        expect(processAlive(hung!)).toBe(false);
        expect(performance.now() - started).toBeLessThan(BOOT_TIMEOUT_MS);
      } finally {
        await vm.stop();
      }
      // The hung boot's temp folder is gone too.
      expect((await readdir(privateTmp)).sort()).toEqual(['hanging-qemu', 'hanging-qemu.pids']);
    },
    BOOT_TIMEOUT_MS,
  );

  it(
    'a guest kernel that hangs in both boots fails with ERR_VMLINK_TESTVM_BOOT_HUNG quoting the line; no QEMU, no folder left',
    async () => {
      const fake = await hangingQemu(2);
      await expect(startVm({ qemuBinary: fake.path, timeoutMs: BOOT_TIMEOUT_MS })).rejects.toMatchObject({
        code: TestVmErrorCode.BOOT_HUNG,
        message: expect.stringMatching(/hung while booting \(boot 2\): ".*soft lockup - CPU#1 stuck for 45s/),
        consoleTail: expect.stringContaining('soft lockup'),
      });
      const pids = await fake.pids();
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(processAlive(pid)).toBe(false);
      expect((await readdir(privateTmp)).sort()).toEqual(['hanging-qemu', 'hanging-qemu.pids']);
    },
    BOOT_TIMEOUT_MS,
  );

  it(
    'a caller killed with SIGKILL leaves no QEMU and no socket folder behind',
    async () => {
      const child = spawn(process.execPath, [join(fixtures, 'start-and-wait.mjs')], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, TMPDIR: privateTmp },
      });
      const line = await new Promise<string>((resolve, reject) => {
        let text = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\n')) resolve(text.split('\n')[0] ?? '');
        });
        child.once('exit', (code) => reject(new Error(`the child exited early with ${code}`)));
      });
      const { pid, tmpDir, port } = JSON.parse(line) as { pid: number; tmpDir: string; port: string };
      expect(processAlive(pid)).toBe(true);
      expect(existsSync(port)).toBe(true);
      expect(tmpDir.startsWith(privateTmp)).toBe(true);

      child.kill('SIGKILL');
      await waitUntil('QEMU is gone', () => !processAlive(pid));
      await waitUntil('the temp folder is removed', () => !existsSync(tmpDir));
      expect(await readdir(privateTmp)).toEqual([]);
    },
    BOOT_TIMEOUT_MS,
  );
});

describe('runInVm', () => {
  it(
    'boots, runs one command and stops; a read-only share refuses writes',
    async () => {
      const result = await runInVm('sh', ['-c', `cat package.json >/dev/null && touch ${join(repoRoot, 'vmlink-ro-probe')}`], {
        share: repoRoot,
        shareReadOnly: true,
        run: { cwd: repoRoot },
      });
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/Read-only file system/);
      expect(existsSync(join(repoRoot, 'vmlink-ro-probe'))).toBe(false);
    },
    BOOT_TIMEOUT_MS,
  );
});

describe('concurrent VMs', () => {
  let freshCache: string;
  let savedCache: string | undefined;

  beforeEach(async () => {
    freshCache = await mkdtemp(join(tmpdir(), 'vmlink-testvm-cache-'));
    savedCache = process.env.VMLINK_TESTVM_CACHE;
    process.env.VMLINK_TESTVM_CACHE = freshCache;
  });

  afterEach(async () => {
    if (savedCache === undefined) delete process.env.VMLINK_TESTVM_CACHE;
    else process.env.VMLINK_TESTVM_CACHE = savedCache;
    await rm(freshCache, { recursive: true, force: true });
  });

  it(
    'two startVm calls on an empty cache build it once and do not share sockets',
    async () => {
      const started = performance.now();
      const [a, b] = await Promise.all([startVm({ ports: ['org.vmlink.test.p'] }), startVm({ ports: ['org.vmlink.test.p'] })]);
      console.log(`testvm: two concurrent cold boots (empty cache) took ${formatMs(performance.now() - started)}`);
      try {
        expect(a.portPath('org.vmlink.test.p')).not.toBe(b.portPath('org.vmlink.test.p'));
        expect(a.tmpDir).not.toBe(b.tmpDir);
        const [ra, rb] = await Promise.all([a.run('echo', ['a']), b.run('echo', ['b'])]);
        expect([ra.stdout, rb.stdout]).toEqual(['a\n', 'b\n']);

        // A guest that dies under a running command: the command fails, the other VM goes on.
        const pending = a.run('sleep', ['1000']);
        process.kill(a.pid, 'SIGKILL');
        await expect(pending).rejects.toMatchObject({ code: TestVmErrorCode.GUEST_EXITED });
        await expect(a.run('true')).rejects.toMatchObject({ code: TestVmErrorCode.GUEST_EXITED });
        expect((await b.run('echo', ['still here'])).stdout).toBe('still here\n');
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
      expect(existsSync(a.tmpDir) || existsSync(b.tmpDir)).toBe(false);
      const kernels = (await readdir(join(freshCache, 'kernel'))).filter((f) => !f.endsWith('.json'));
      const initramfs = await readdir(join(freshCache, 'initramfs'));
      expect(kernels).toHaveLength(1);
      expect(initramfs).toHaveLength(1);
    },
    BOOT_TIMEOUT_MS * 2,
  );
});
