/**
 * The CI test: vmlink-guest inside a @vmlink/testvm guest, the vmlink CLI on the
 * host over virtio-serial (QEMU's chardev socket), plus a client inside the guest over
 * vsock (CID 1). One VM for the whole file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadPartName } from '@vmlink/agent-protocol';
import { ExitCode } from '../src/exit-codes.js';
import { connectAgent } from '../src/rpc-client.js';
import { loadTestVm, type GuestVm } from '../src/testvm.js';
import { GUEST_CLI, HOST_CLI, runVmlink, spawnVmlink } from './helpers.js';
import { guestFileSize, guestLogCount, guestParts, guestPrefixSha256, interruptedAt, setGuestByte, signalWhenFileHolds, waitForGuestLog } from './vm-helpers/upload-interrupt.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const PORT = 'org.vmlink.agent.0';
const ROOT = '/tmp/agent-root';
const LOG = '/tmp/vmlink-agent.log';
const PID = '/tmp/vmlink-agent.pid';
const MIB = 1024 * 1024;
/** `seq 1 20000` in the guest, for the output caps: a cut must keep exactly its first bytes. */
const SEQ_20000 = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join('');

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('vmlink CLI on the host, vmlink-guest in a QEMU guest, over virtio-serial', () => {
  let vm: GuestVm;
  let local: string;
  let uri: string;

  const guestLog = async (): Promise<string> => (await vm.run('cat', [LOG])).stdout;
  const startAgent = async (): Promise<void> => {
    const agent = [
      'node', GUEST_CLI, '--listen', `virtio-serial:${PORT}`, '--listen', 'vsock://any:1024',
      '--root', ROOT, '--allow-exec', 'uname,echo,sh', '--allow-env', 'GREETING',
      // The second client dials from inside the guest (CID 1); by default only the host (CID 2) may connect.
      '--allow-cid', '1',
    ].join(' ');
    const script = `mkdir -p ${ROOT}/dir && (setsid ${agent} >${LOG} 2>&1 </dev/null & echo $! >${PID})
for i in $(seq 1 300); do grep -q ' ready ' ${LOG} && exit 0; sleep 0.2; done; exit 1`;
    const started = await vm.run('sh', ['-c', script], { timeoutMs: 90_000 });
    if (started.exitCode !== 0) throw new Error(`agent did not start in the guest:\n${await guestLog()}`);
  };
  const killAgent = async (signal: 'KILL' | 'TERM'): Promise<void> => {
    await vm.run('sh', ['-c', `kill -${signal} $(cat ${PID})`]);
  };

  beforeAll(async () => {
    local = await mkdtemp(path.join(tmpdir(), 'vmlink-vm-e2e-'));
    vm = await (await loadTestVm()).startVm({ share: repoRoot, ports: [PORT], memoryMiB: 1024 });
    uri = `virtio-serial+unix:${vm.portPath(PORT)}`;
    await startAgent();
  }, 240_000);

  afterAll(async () => {
    await vm?.stop();
    if (local) await rm(local, { recursive: true, force: true });
  });

  it('ping, info and ls over virtio-serial', async () => {
    const ping = await runVmlink(['ping', uri, '--count', '3']);
    expect(ping.code, `${ping.stderr}\n${await guestLog()}`).toBe(0);
    const info = await runVmlink(['info', uri, '--json']);
    expect(info.code, info.stderr).toBe(0);
    const parsed = JSON.parse(info.stdout) as { kernel: { release: string }; transports: string[]; agent: { root: string } };
    expect(parsed.kernel.release).toBe(vm.info.release);
    expect(parsed.transports).toEqual(expect.arrayContaining([`virtio-serial:${PORT}`]));
    expect(parsed.agent.root).toBe(ROOT);
    const ls = await runVmlink(['ls', uri, '/']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain('dir/');
  });

  it('copies 64 MiB both ways with SHA-256 verified on each side', async () => {
    const original = path.join(local, 'big.bin');
    await writeFile(original, randomBytes(64 * 1024 * 1024));
    const expected = await sha256File(original);
    const up = await runVmlink(['cp', original, `${uri}:/dir/big.bin`], { timeoutMs: 600_000 });
    expect(up.code, up.stderr).toBe(0);
    const inGuest = await vm.run('sha256sum', [`${ROOT}/dir/big.bin`]);
    expect(inGuest.stdout.split(' ')[0]).toBe(expected);
    const back = path.join(local, 'back.bin');
    const down = await runVmlink(['cp', `${uri}:/dir/big.bin`, back], { timeoutMs: 600_000 });
    expect(down.code, down.stderr).toBe(0);
    expect(await sha256File(back)).toBe(expected);
  }, 600_000);

  it('exec: output, exit codes and the policy refusal', async () => {
    const uname = await runVmlink(['exec', uri, '--', 'uname', '-r']);
    expect(uname).toMatchObject({ code: 0, stdout: `${vm.info.release}\n` });
    const seven = await runVmlink(['exec', uri, '--', 'sh', '-c', 'echo err >&2; exit 7']);
    expect(seven).toMatchObject({ code: 7, stderr: 'err\n' });
    const refused = await runVmlink(['exec', uri, '--', 'cat', '/etc/passwd']);
    expect(refused.code, `${refused.stderr}\n${await guestLog()}`).toBe(ExitCode.POLICY);
    expect(refused.stderr).toMatch(/ERR_VMLINK_EXEC_DENIED/);
    const escape = await runVmlink(['ls', uri, '/../etc']);
    expect(escape.code, `${escape.stderr}\n${await guestLog()}`).toBe(ExitCode.POLICY);
    expect(escape.stderr).toMatch(/ERR_VMLINK_PATH_ESCAPE/);
  });

  it('exec --env, --cwd and --max-output reach the guest command; a name not allowed, a cwd escape and a symlink out are refused', async () => {
    const made = await vm.run('sh', ['-c', `mkdir -p ${ROOT}/dir/sub && ln -sfn /etc ${ROOT}/out`]);
    expect(made.exitCode, made.stderr).toBe(0);
    const ran = await runVmlink(['exec', uri, '--env', 'GREETING=hi there', '--cwd', '/dir/sub', '--', 'sh', '-c', 'printf "%s|%s" "$GREETING" "$(pwd -P)"']);
    expect(ran, `${ran.stderr}\n${await guestLog()}`).toMatchObject({ code: 0, stdout: `hi there|${ROOT}/dir/sub` });
    // A relative cwd is taken from the root too.
    const relative = await runVmlink(['exec', uri, '--cwd', 'dir', '--', 'sh', '-c', 'pwd -P']);
    expect(relative).toMatchObject({ code: 0, stdout: `${ROOT}/dir\n` });

    const denied = await runVmlink(['exec', uri, '--env', 'GREETING=ok', '--env', 'SECRET=1', '--', 'sh', '-c', 'echo ran']);
    expect(denied.code, denied.stderr).toBe(ExitCode.POLICY);
    expect(denied.stderr).toMatch(/'SECRET' refused by policy \(allowed: GREETING\).*\[ERR_VMLINK_ENV_DENIED\]/);
    expect(denied.stdout).toBe('');
    for (const cwd of ['../..', '/dir/../..', '/out']) {
      const escaped = await runVmlink(['exec', uri, '--cwd', cwd, '--', 'sh', '-c', 'echo ran']);
      expect(escaped.code, `--cwd ${cwd}: ${escaped.stderr}`).toBe(ExitCode.POLICY);
      expect(escaped.stderr, `--cwd ${cwd}`).toMatch(/\[ERR_VMLINK_PATH_ESCAPE\]/);
      expect(escaped.stdout).toBe('');
    }

    // Cut like head -c: the first 1000 bytes exactly; stderr and the exit status go on.
    const capped = await runVmlink(['exec', uri, '--max-output', '1000', '--', 'sh', '-c', 'seq 1 20000; echo done >&2; exit 4']);
    expect(capped.code, capped.stderr).toBe(4);
    expect(capped.stdout).toBe(SEQ_20000.slice(0, 1000));
    expect(capped.stderr).toBe('done\nvmlink exec: stdout cut at 1000 bytes (--max-output or the agent\'s --exec-max-output); the command\'s exit status is its own\n');
    // The exit record says where each stream was cut (the CLI's note above comes from it).
    const client = await connectAgent(uri, { timeoutMs: 60_000 });
    try {
      const out: Buffer[] = [];
      const exit = await client.exec('sh', ['-c', 'seq 1 20000; printf 12345 >&2'], async (stream, chunk) => void (stream === 'stdout' && out.push(Buffer.from(chunk))), {
        request: { maxOutput: { stdout: 4096, stderr: 5 } },
      });
      expect(Buffer.concat(out).toString('utf8')).toBe(SEQ_20000.slice(0, 4096));
      // stderr fits its cap exactly: not marked.
      expect(exit).toEqual({ exitCode: 0, signal: null, truncated: { stdout: 4096 } });
    } finally {
      await client.close();
    }
  }, 180_000);

  it('a second client inside the guest reaches the same agent over vsock (CID 1)', async () => {
    const ping = await vm.run('node', [HOST_CLI, 'ping', 'vsock://1:1024'], { timeoutMs: 60_000 });
    expect(ping.exitCode, `${ping.stdout}${ping.stderr}`).toBe(0);
    expect(ping.stdout).toMatch(/pong from vsock:\/\/1:1024/);
  });

  it('file management, cp -r and exec stdin over virtio-serial; mkdir/rm over vsock inside the guest', async () => {
    const tree = path.join(local, 'tree');
    await mkdir(path.join(tree, 'sub'), { recursive: true });
    await writeFile(path.join(tree, 'a.txt'), 'alpha\n');
    await writeFile(path.join(tree, 'sub', 'b.txt'), 'beta\n');
    const made = await runVmlink(['mkdir', '-p', uri, '/m/n']);
    expect(made.code, made.stderr).toBe(0);
    const up = await runVmlink(['cp', '-r', tree, `${uri}:/m/n`]);
    expect(up.code, up.stderr).toBe(0);
    expect((await vm.run('cat', [`${ROOT}/m/n/tree/sub/b.txt`])).stdout).toBe('beta\n');
    const ch = await runVmlink(['chmod', uri, '600', '/m/n/tree/a.txt']);
    expect(ch.code, ch.stderr).toBe(0);
    const st = await runVmlink(['stat', uri, '/m/n/tree/a.txt', '--json']);
    expect(JSON.parse(st.stdout)).toMatchObject({ type: 'file', size: 6, mode: 0o600 });
    const mv = await runVmlink(['mv', uri, '/m/n/tree', '/moved']);
    expect(mv.code, mv.stderr).toBe(0);
    const down = await runVmlink(['cp', '-r', `${uri}:/moved`, path.join(local, 'back')]);
    expect(down.code, down.stderr).toBe(0);
    expect(await readFile(path.join(local, 'back', 'sub', 'b.txt'), 'utf8')).toBe('beta\n');
    const rootRm = await runVmlink(['rm', '-r', uri, '/']);
    expect(rootRm.code).toBe(ExitCode.POLICY);
    expect(rootRm.stderr).toMatch(/ERR_VMLINK_ROOT_PROTECTED/);
    const removed = await runVmlink(['rm', '-r', uri, '/m']);
    expect(removed.code, removed.stderr).toBe(0);
    // exec with stdin streamed into the guest command.
    const child = spawn(process.execPath, [HOST_CLI, 'exec', uri, '--', 'sh', '-c', 'read x; echo "got $x"'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stdin.end('hello\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(out).toBe('got hello\n');
    // The same from a client inside the guest, over vsock loopback.
    const inner = await vm.run('sh', ['-c', `node ${HOST_CLI} mkdir -p vsock://1:1024 /v/w && node ${HOST_CLI} rm -r vsock://1:1024 /v`], { timeoutMs: 60_000 });
    expect(inner.exitCode, `${inner.stdout}${inner.stderr}`).toBe(0);
    expect(inner.stdout).toContain('created /v/w');
    expect(inner.stdout).toContain('removed /v (2 entries)');
  });

  it('a killed agent mid-copy: the CLI fails within 2 s with a clear code, no half file on either side', async () => {
    const made = await vm.run('sh', ['-c', `truncate -s 4G ${ROOT}/huge.bin`]);
    expect(made.exitCode, made.stderr).toBe(0);
    const target = path.join(local, 'huge.bin');
    // Over virtio-serial the host sees no hang-up when the guest process dies: the
    // CLI notices the silence, so its silence limit is set below the 2 s bound.
    const copy = spawnVmlink(['cp', `${uri}:/huge.bin`, target, '--timeout', '1500']);
    const deadline = Date.now() + 60_000;
    const partial = async (): Promise<number> => {
      const name = (await readdir(local)).find((n) => n.endsWith('.part'));
      return name ? (await stat(path.join(local, name)).catch(() => undefined))?.size ?? 0 : 0;
    };
    while ((await partial()) < 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await killAgent('KILL');
    // The clock starts once the guest reports the agent dead: the report itself comes
    // through testvm's command channel (0.5 s or more under load), which is not the CLI's time.
    const killedAt = performance.now();
    const result = await copy.done;
    const elapsed = performance.now() - killedAt;
    expect([ExitCode.CONNECTION_LOST, ExitCode.TIMEOUT], result.stderr).toContain(result.code);
    expect(result.stderr).toContain(uri);
    // The CLI's own clock says when it gave up (the 2 s bound); the test's wall clock also
    // holds the CLI's exit and a loaded host's scheduling, so it only gets a loose bound.
    if (result.code === ExitCode.TIMEOUT) {
      const silentMs = Number(/no answer from .* for (\d+) ms/.exec(result.stderr)?.[1]);
      expect(silentMs, result.stderr).toBeGreaterThanOrEqual(1500);
      expect(silentMs, result.stderr).toBeLessThan(2000);
    }
    expect(elapsed).toBeLessThan(5000);
    expect((await readdir(local)).filter((n) => n.startsWith('.huge.bin'))).toEqual([]);
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    await vm.run('rm', ['-f', `${ROOT}/huge.bin`]);
  }, 180_000);

  it('after an agent restart the CLI reconnects over the same port', async () => {
    await startAgent();
    const ping = await runVmlink(['ping', uri, '--count', '2']);
    expect(ping.code, `${ping.stderr}\n${await guestLog()}`).toBe(0);
    const upload = path.join(local, 'small.txt');
    await writeFile(upload, 'after restart\n');
    const up = await runVmlink(['cp', upload, `${uri}:/dir/small.txt`]);
    expect(up.code, up.stderr).toBe(0);
    const leftovers = await vm.run('sh', ['-c', `ls -a ${ROOT}/dir | grep -c '\\.tmp$' || true`]);
    expect(leftovers.stdout.trim()).toBe('0');
  }, 120_000);

  it('cp --resume up: an agent killed mid-upload keeps its part; restarted, it continues from there (only the rest is sent), SHA-256 checked in the guest', async () => {
    const size = 16 * MIB; // 2 MiB -> the end takes long enough for the guest watcher to see the threshold crossed
    const data = randomBytes(size);
    const sha = createHash('sha256').update(data).digest('hex');
    const original = path.join(local, 'resume.bin');
    await writeFile(original, data);
    const part = `${ROOT}/dir/${uploadPartName('resume.bin', sha)}`;
    // The guest kills the agent once its part holds 2 MiB: it cannot write a byte more.
    const watcher = signalWhenFileHolds(vm, { file: part, bytes: 2 * MIB, signal: 'KILL', pidFile: PID, deadlineS: 300 });
    // Over virtio-serial the host is not told the guest process died: the test ends the CLI
    // itself, so its silence limit is set out of reach of any stall.
    const copy = spawnVmlink(['cp', '--resume', '--timeout', '300000', original, `${uri}:/dir/resume.bin`]);
    const seen = await interruptedAt(watcher, copy);
    copy.child.kill('SIGKILL');
    await copy.done;
    const kept = await guestFileSize(vm, part);
    expect(kept).toBeGreaterThanOrEqual(seen);
    expect(kept).toBeLessThan(size);
    expect(await guestParts(vm, `${ROOT}/dir`)).toEqual([path.posix.basename(part)]);

    await startAgent();
    const resumed = await runVmlink(['cp', '--resume', '--json', original, `${uri}:/dir/resume.bin`], { timeoutMs: 600_000 });
    expect(resumed.code, `${resumed.stderr}\n${await guestLog()}`).toBe(0);
    const summary = JSON.parse(resumed.stdout) as { size: number; sha256: string; resumedFrom?: number };
    expect(summary).toMatchObject({ size, sha256: sha, verified: true, resumedFrom: kept });
    // What crossed the link this time: the file minus the kept part (at least 2 MiB fewer).
    expect(size - (summary.resumedFrom ?? 0)).toBeLessThanOrEqual(size - 2 * MIB);
    expect((await vm.run('sha256sum', [`${ROOT}/dir/resume.bin`])).stdout.split(' ')[0]).toBe(sha);
    expect(await guestParts(vm, `${ROOT}/dir`)).toEqual([]);
    await vm.run('rm', ['-f', `${ROOT}/dir/resume.bin`]);
  }, 900_000);

  it('cp --resume up: the CLI killed mid-upload (the agent frozen meanwhile) leaves the part; a byte changed in it makes the next --resume start over from 0', async () => {
    const size = 16 * MIB; // 2 MiB -> the end takes long enough for the guest watcher to see the threshold crossed
    const data = randomBytes(size);
    const sha = createHash('sha256').update(data).digest('hex');
    const original = path.join(local, 'again.bin');
    await writeFile(original, data);
    const part = `${ROOT}/dir/${uploadPartName('again.bin', sha)}`;
    // Frozen at 2 MiB, the agent cannot finish the upload before the CLI is killed.
    const watcher = signalWhenFileHolds(vm, { file: part, bytes: 2 * MIB, signal: 'STOP', pidFile: PID, deadlineS: 300 });
    const copy = spawnVmlink(['cp', '--resume', '--timeout', '300000', original, `${uri}:/dir/again.bin`]);
    const seen = await interruptedAt(watcher, copy);
    const writesBefore = await guestLogCount(vm, LOG, 'req fs.write');
    copy.child.kill('SIGKILL');
    expect((await copy.done).signal).toBe('SIGKILL');
    await vm.run('sh', ['-c', `kill -CONT $(cat ${PID})`]);
    // The agent sees the host hang up, ends the write and keeps the part; then it logs it.
    await waitForGuestLog(vm, LOG, 'req fs.write', writesBefore);
    const kept = await guestFileSize(vm, part);
    expect(kept).toBeGreaterThanOrEqual(seen);
    expect(kept).toBeLessThan(size);
    // The host vanished, maybe mid-record: what the agent kept is exactly the file's start.
    expect(await guestPrefixSha256(vm, part, kept!)).toBe(createHash('sha256').update(data.subarray(0, kept)).digest('hex'));

    await setGuestByte(vm, part, 1000, data[1000]! ^ 0xff);
    const restarted = await runVmlink(['cp', '--resume', '--json', original, `${uri}:/dir/again.bin`], { timeoutMs: 600_000 });
    expect(restarted.code, `${restarted.stderr}\n${await guestLog()}`).toBe(0);
    const summary = JSON.parse(restarted.stdout) as { size: number; sha256: string; resumedFrom?: number };
    expect(summary).toMatchObject({ size, sha256: sha, verified: true });
    expect(summary.resumedFrom).toBeUndefined(); // the whole file was sent again
    expect((await vm.run('sha256sum', [`${ROOT}/dir/again.bin`])).stdout.split(' ')[0]).toBe(sha);
    expect(await guestParts(vm, `${ROOT}/dir`)).toEqual([]);
    await vm.run('rm', ['-f', `${ROOT}/dir/again.bin`]);
  }, 900_000);

  it('SIGTERM stops the agent cleanly', async () => {
    await killAgent('TERM');
    const waited = await vm.run('sh', ['-c', `for i in $(seq 1 100); do kill -0 $(cat ${PID}) 2>/dev/null || exit 0; sleep 0.1; done; exit 1`]);
    expect(waited.exitCode, await guestLog()).toBe(0);
    expect(await guestLog()).toMatch(/stopped/);
  }, 60_000);
});
