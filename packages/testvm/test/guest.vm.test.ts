import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVm, runGuestNodeTest, type Vm, TestVmErrorCode } from '../src/index.js';
import { BOOT_TIMEOUT_MS, fixtures, formatMs, repoRoot } from './helpers.js';

const PORT = 'org.vmlink.test.0';

describe('a booted guest (one VM for this file)', () => {
  let vm: Vm;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'vmlink-testvm-share-'));
    const started = performance.now();
    vm = await startVm({ share: [repoRoot, scratch], ports: [{ name: PORT }], withPrograms: ['socat'] });
    console.log(
      `testvm: boot ${formatMs(performance.now() - started)} (cache ${formatMs(vm.timings.prepareMs)}, QEMU to ready ${formatMs(vm.timings.bootMs)})`,
    );
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    await vm?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('runs node -e with the host node binary', async () => {
    const started = performance.now();
    const result = await vm.run('node', ['-e', 'console.log(process.version)']);
    console.log(`testvm: one vm.run (node -e) took ${formatMs(performance.now() - started)}`);
    expect(result).toMatchObject({ exitCode: 0, signal: null, stdout: `${process.version}\n`, stderr: '' });
  });

  it('reports the guest kernel and the modules it loaded', async () => {
    expect(vm.info.release).toMatch(/-amd64$/);
    expect(vm.info.modules).toEqual(expect.arrayContaining(['virtio_console', 'vsock', 'vsock_loopback', '9pnet_virtio', '9p']));
    // Only a VM with `vsock` loads the virtio vsock transport (vsock.vm.test.ts).
    expect(vm.info.modules).not.toContain('vmw_vsock_virtio_transport');
    expect(vm.vsockPath).toBeUndefined();
    const uname = await vm.run('uname', ['-r']);
    expect(uname.stdout.trim()).toBe(vm.info.release);
  });

  it('sees the shares at the same absolute paths, read-write', async () => {
    const token = randomBytes(8).toString('hex');
    await writeFile(join(scratch, 'from-host.txt'), token);
    const read = await vm.run('cat', [join(scratch, 'from-host.txt')]);
    expect(read.stdout).toBe(token);

    const write = await vm.run('sh', ['-c', `echo "$TOKEN" > ${join(scratch, 'from-guest.txt')}`], { env: { TOKEN: token } });
    expect(write.exitCode).toBe(0);
    expect(await readFile(join(scratch, 'from-guest.txt'), 'utf8')).toBe(`${token}\n`);

    const pkg = await vm.run('node', ['-p', 'require("./package.json").name'], { cwd: join(repoRoot, 'packages', 'testvm') });
    expect(pkg.stdout.trim()).toBe('@vmlink/testvm');
  });

  it('runs a node:test file with the spec reporter (runGuestNodeTest)', async () => {
    const passing = await runGuestNodeTest(vm, join(fixtures, 'passing.test.mjs'));
    expect(passing.exitCode, passing.output).toBe(0);
    expect(passing.output).toContain('runs in the guest kernel');

    const failing = await runGuestNodeTest(vm, join(fixtures, 'failing.test.mjs'));
    expect(failing.exitCode).not.toBe(0);
    expect(failing.output).toContain('deliberate failure');
  });

  it('moves bytes over AF_VSOCK loopback (CID 1) between two socat peers', async () => {
    const script = [
      'socat VSOCK-LISTEN:5000,reuseaddr,fork EXEC:cat >/dev/null 2>&1 &',
      'listener=$!',
      // Wait for the listener instead of sleeping a fixed time.
      'for i in $(seq 1 100); do grep -q " 0A " /proc/net/vsock 2>/dev/null && break; echo probe | socat -T1 - VSOCK-CONNECT:1:5000 >/dev/null 2>&1 && break; sleep 0.1; done',
      'echo "hello over vsock" | socat -t2 - VSOCK-CONNECT:1:5000',
      'status=$?',
      'kill $listener',
      'exit $status',
    ].join('\n');
    const result = await vm.run('sh', ['-c', script], { timeoutMs: 60_000 });
    expect(result.stderr).toBe('');
    expect(result).toMatchObject({ exitCode: 0, stdout: 'hello over vsock\n' });
  });

  it('moves bytes both ways over a virtio-serial port between a host socket and a guest process', async () => {
    const payload = randomBytes(256 * 1024);
    const socket: Socket = connect(vm.portPath(PORT));
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    // Written before the guest opens the port: QEMU keeps it until then.
    socket.write(payload);
    const result = await vm.run('node', [join(fixtures, 'port-echo.mjs'), `/dev/virtio-ports/${PORT}`, String(payload.length)], {
      timeoutMs: 60_000,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const header = `${payload.length} ${createHash('sha256').update(payload).digest('hex')}\n`;
    const expectedBack = Buffer.concat([Buffer.from(header), Buffer.from(payload).reverse()]);
    while (Buffer.concat(received).length < expectedBack.length) {
      await new Promise((resolve) => socket.once('data', resolve));
    }
    socket.destroy();
    expect(Buffer.concat(received).equals(expectedBack)).toBe(true);
  });

  it('reaches itself over TCP loopback (127.0.0.1 and localhost)', async () => {
    const result = await vm.run('node', [join(fixtures, 'tcp-loopback.mjs')], { timeoutMs: 30_000 });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'via 127.0.0.1\nvia localhost\n' });
  });

  it('propagates exit codes, signals and spawn failures', async () => {
    expect((await vm.run('true')).exitCode).toBe(0);
    expect((await vm.run('sh', ['-c', 'exit 7'])).exitCode).toBe(7);
    expect(await vm.run('sh', ['-c', 'kill -9 $$'])).toMatchObject({ exitCode: 137, signal: 'SIGKILL' });
    const missing = await vm.run('no-such-program-here');
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('no-such-program-here');
  });

  it('turns a hang into ERR_VMLINK_TESTVM_RUN_TIMEOUT, kills it, and stays usable', async () => {
    const hang = vm.run('sh', ['-c', 'echo started; sleep 1000'], { timeoutMs: 3000 });
    await expect(hang).rejects.toMatchObject({ code: TestVmErrorCode.RUN_TIMEOUT });
    // The kill is sent before the timeout rejects; dying and being reaped take a moment more.
    const after = await vm.run('sh', ['-c', 'for i in $(seq 100); do pgrep -x sleep >/dev/null || { echo none; exit 0; }; sleep 0.1; done; pgrep -x sleep']);
    expect(after.stdout.trim()).toBe('none');
  });

  it('feeds stdin, keeps large output intact and runs commands concurrently', async () => {
    const echoed = await vm.run('cat', [], { input: 'from stdin\n' });
    expect(echoed.stdout).toBe('from stdin\n');

    // Big enough to fill the guest's send queue, so the runner pauses the pipes for a while.
    const size = 24 * 1024 * 1024;
    const big = await vm.run('node', ['-e', `process.stdout.write("x".repeat(${size}))`]);
    expect(big.stdout.length).toBe(size);
    expect(big.truncated).toBe(false);

    // The background sleep keeps stdout open; the result must not wait for it.
    const background = await vm.run('sh', ['-c', 'sleep 1000 & echo started'], { timeoutMs: 20_000 });
    expect(background).toMatchObject({ exitCode: 0, stdout: 'started\n' });
    await vm.run('pkill', ['-x', 'sleep']);

    const results = await Promise.all([1, 2, 3, 4].map((n) => vm.run('sh', ['-c', `sleep 0.$n; echo ${n}; echo e${n} >&2`])));
    expect(results.map((r) => [r.stdout, r.stderr])).toEqual([1, 2, 3, 4].map((n) => [`${n}\n`, `e${n}\n`]));
  });

  it('caps kept output and says it did', async () => {
    const result = await vm.run('node', ['-e', 'process.stdout.write("y".repeat(5000))'], { maxOutputBytes: 1000 });
    expect(result).toMatchObject({ exitCode: 0, truncated: true, stdout: 'y'.repeat(1000) });
  });

  it('aborts a running command with an AbortError', async () => {
    const controller = new AbortController();
    const running = vm.run('sleep', ['1000'], { signal: controller.signal });
    setTimeout(() => controller.abort(), 500);
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('refuses bad run arguments with coded errors', async () => {
    await expect(vm.run('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(vm.run('echo', ['ok'], { timeoutMs: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(vm.run('true', [], { cwd: '/no/such/dir' })).rejects.toMatchObject({
      code: TestVmErrorCode.BAD_CWD,
      message: expect.stringContaining('/no/such/dir'),
    });
    // A variable set to undefined is removed from the default environment.
    const env = await vm.run('sh', ['-c', 'echo "${HOME:-unset} $EXTRA"'], { env: { HOME: undefined, EXTRA: 'x' } });
    expect(env.stdout).toBe('unset x\n');
  });

  it('records finished commands on the file-backed result port', async () => {
    await vm.run('sh', ['-c', 'echo result-port-check; exit 4']);
    const log = await vm.resultLog();
    expect(log.at(-1)).toMatchObject({ cmd: 'sh', exitCode: 4, signal: null, stdoutTail: 'result-port-check\n' });
  });

  it('names its ports and refuses unknown ones', () => {
    expect(vm.portPath(PORT)).toMatch(/\.sock$/);
    expect(() => vm.portPath('org.vmlink.test.missing')).toThrow(expect.objectContaining({ code: TestVmErrorCode.UNKNOWN_PORT }));
  });
});
