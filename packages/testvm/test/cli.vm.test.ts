import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BOOT_TIMEOUT_MS, cli, repoRoot } from './helpers.js';

describe('vmlink-testvm CLI', () => {
  it(
    'run: prints the command output and exits with its exit code, in the shared cwd, with --port and --with',
    async () => {
      const portsFile = join(await mkdtemp(join(tmpdir(), 'vmlink-testvm-cli-')), 'ports.json');
      const script = [
        'echo "$GREETING from $(pwd)"',
        'test -e /dev/virtio-ports/org.vmlink.cli.0 && echo port-linked',
        'socat -V >/dev/null && echo socat-present',
        'echo oops >&2',
        'exit 5',
      ].join('; ');
      const res = await cli(
        ['run', '--share', repoRoot, '--env', 'GREETING=hi', '--port', 'org.vmlink.cli.0', '--with', 'socat', '--', 'sh', '-c', script],
        { ...process.env, VMLINK_TESTVM_PORTS_FILE: portsFile },
      );
      expect(res.stderr).toContain('oops');
      expect(res).toMatchObject({ code: 5, stdout: `hi from ${repoRoot.replace(/\/$/, '')}\nport-linked\nsocat-present\n` });
      const ports = JSON.parse(await readFile(portsFile, 'utf8')) as Record<string, string>;
      expect(ports['org.vmlink.cli.0']).toMatch(/\.sock$/);
      await rm(dirname(portsFile), { recursive: true, force: true });
    },
    BOOT_TIMEOUT_MS,
  );

  it(
    'run: a command that hangs past --timeout exits 2 with a clear message',
    async () => {
      const res = await cli(['run', '--timeout', '3', '--', 'sleep', '1000']);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/ERR_VMLINK_TESTVM_RUN_TIMEOUT.*sleep 1000.*did not finish within/);
    },
    BOOT_TIMEOUT_MS,
  );

  it('run: a guest not up within --boot-timeout exits 2 with ERR_VMLINK_TESTVM_BOOT_TIMEOUT', async () => {
    const res = await cli(['run', '--boot-timeout', '1', '--', 'true']);
    expect(res).toMatchObject({ code: 2, stderr: expect.stringContaining('ERR_VMLINK_TESTVM_BOOT_TIMEOUT') });
  });

  it('run: bad input exits 2 naming the problem, before booting', async () => {
    const missing = await cli(['run', '--share', '/nonexistent/dir', '--', 'true']);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('ERR_VMLINK_TESTVM_SHARE_NOT_FOUND') });
    const badPort = await cli(['run', '--port', 'a/b', '--', 'true']);
    expect(badPort).toMatchObject({ code: 2, stderr: expect.stringContaining('ERR_VMLINK_TESTVM_BAD_PORT_NAME') });
    const badCid = await cli(['run', '--vsock', '--guest-cid', '2', '--', 'true']);
    expect(badCid).toMatchObject({ code: 2, stderr: expect.stringContaining('--guest-cid must be >= 3') });
    const noCommand = await cli(['run']);
    expect(noCommand).toMatchObject({ code: 2, stderr: expect.stringContaining('no command given') });
    const noQemu = await cli(['run', '--', 'true'], { ...process.env, PATH: '/nonexistent' });
    expect(noQemu).toMatchObject({ code: 2, stderr: expect.stringMatching(/ERR_VMLINK_TESTVM_QEMU_NOT_FOUND.*apt-get install/) });
  });

  it(
    'info --vsock: boots with a vsock device and prints kernel release, cpus, memory, modules and the vsock host socket',
    async () => {
      const vsockFile = join(await mkdtemp(join(tmpdir(), 'vmlink-testvm-cli-')), 'vsock.json');
      const res = await cli(['info', '--cpus', '2', '--vsock', '--guest-cid', '9'], { ...process.env, VMLINK_TESTVM_VSOCK_FILE: vsockFile });
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/kernel release: \S+-amd64/);
      expect(res.stdout).toMatch(/cpus:\s+2\n/);
      expect(res.stdout).toMatch(/modules:.*vsock_loopback/);
      expect(res.stdout).toMatch(/modules:.*vmw_vsock_virtio_transport/);
      expect(res.stderr).toMatch(/vmlink-testvm: vsock host socket \/\S+\/vsock\.sock \(guest CID 9;/);
      const announced = JSON.parse(await readFile(vsockFile, 'utf8')) as { udsPath: string; guestCid: number };
      expect(announced).toEqual({ udsPath: expect.stringMatching(/\/vsock\.sock$/), guestCid: 9 });
      await rm(dirname(vsockFile), { recursive: true, force: true });
    },
    BOOT_TIMEOUT_MS,
  );

  it('doctor: reports every check and exits 0 on a ready host', async () => {
    const res = await cli(['doctor']);
    expect(res.code, res.stdout).toBe(0);
    for (const name of ['QEMU', 'qboot firmware', 'busybox', 'guest kernel', '/dev/kvm']) expect(res.stdout).toContain(name);
  });

  it('doctor: names the apt-get line when QEMU is missing', async () => {
    const res = await cli(['doctor'], { ...process.env, PATH: '/usr/bin/nonexistent:/bin/nonexistent' });
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/MISSING QEMU/);
    expect(res.stdout).toMatch(/apt-get update && apt-get install -y .*qemu-system-x86/);
  });
});
