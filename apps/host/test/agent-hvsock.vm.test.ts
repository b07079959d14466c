/**
 * The host CLI drives vmlink-guest in a QEMU guest over real host<->guest vsock: the guest
 * has a virtio-vsock device (@vmlink/vhost-user-vsock, through @vmlink/testvm's
 * `vsock: true`) and the CLI dials `hvsock:<vm.vsockPath>:1024`, the hybrid-vsock socket
 * Firecracker and Cloud Hypervisor expose. The agent runs with its default vsock policy
 * (only CID 2, the host). One guest boot for the whole file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadPartName } from '@vmlink/agent-protocol';
import { ExitCode, exitCodeFor } from '../src/exit-codes.js';
import { connectAgent } from '../src/rpc-client.js';
import { loadTestVm, type GuestVm } from '../src/testvm.js';
import { type CliRun, GUEST_CLI, HOST_CLI, runVmlink, spawnVmlink } from './helpers.js';
import { guestFileSize, guestLogCount, guestParts, interruptedAt, setGuestByte, signalWhenFileHolds, waitForGuestLog } from './vm-helpers/upload-interrupt.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const ROOT = '/tmp/agent-root';
const LOG = '/tmp/vmlink-agent.log';
const PID = '/tmp/vmlink-agent.pid';
const AGENT_PORT = 1024;
/** No liveness limit of this file may fire on a loaded machine: the CLI's silence limit too. */
const CLI_SILENCE_MS = '120000';
const MIB = 1024 * 1024;
/** `seq 1 20000` in the guest, for the output caps: a cut must keep exactly its first bytes. */
const SEQ_20000 = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join('');

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `vmlink NAME --timeout 120000 ...rest`: options may come before the positionals. */
function vmlink([name, ...rest]: readonly string[], runTimeoutMs = 300_000): Promise<CliRun> {
  return runVmlink([name ?? '', '--timeout', CLI_SILENCE_MS, ...rest], { timeoutMs: runTimeoutMs });
}

describe('vmlink CLI on the host, vmlink-guest in a QEMU guest, over hvsock: (host<->guest vsock)', () => {
  let vm: GuestVm;
  let local: string;
  let vsockPath: string;
  let uri: string;

  const guestLog = async (): Promise<string> => (await vm.run('cat', [LOG])).stdout;
  const guestSha = async (remote: string): Promise<string> => (await vm.run('sha256sum', [`${ROOT}${remote}`])).stdout.split(' ')[0] ?? '';
  const startAgent = async (): Promise<void> => {
    // No --allow-cid: the agent's default takes vsock peers from the host (CID 2) only.
    const agent = ['node', GUEST_CLI, '--listen', `vsock://any:${AGENT_PORT}`, '--root', ROOT, '--allow-exec', 'uname,echo,sh', '--allow-env', 'GREETING'].join(' ');
    const script = `mkdir -p ${ROOT}/dir && (setsid ${agent} >${LOG} 2>&1 </dev/null & echo $! >${PID})
for i in $(seq 1 600); do grep -q ' ready ' ${LOG} && exit 0; sleep 0.2; done; exit 1`;
    const started = await vm.run('sh', ['-c', script], { timeoutMs: 180_000 });
    if (started.exitCode !== 0) throw new Error(`agent did not start in the guest:\n${await guestLog()}`);
  };

  beforeAll(async () => {
    local = await mkdtemp(path.join(tmpdir(), 'vmlink-hvsock-e2e-'));
    vm = await (await loadTestVm()).startVm({ share: repoRoot, ports: [], memoryMiB: 1024, timeoutMs: 240_000, vsock: true });
    if (vm.vsockPath === undefined) throw new Error('startVm({ vsock: true }) gave no vsockPath');
    vsockPath = vm.vsockPath;
    uri = `hvsock:${vsockPath}:${AGENT_PORT}`;
    await startAgent();
  }, 480_000);

  afterAll(async () => {
    await vm?.stop();
    if (local) await rm(local, { recursive: true, force: true });
  });

  it('ping, info and ls over hvsock:', async () => {
    const ping = await vmlink(['ping', uri, '--count', '3']);
    expect(ping.code, `${ping.stderr}\n${await guestLog()}`).toBe(0);
    expect(ping.stdout.match(new RegExp(`pong from ${uri.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'g'))).toHaveLength(3);
    const info = await vmlink(['info', uri, '--json']);
    expect(info.code, info.stderr).toBe(0);
    const parsed = JSON.parse(info.stdout) as { kernel: { release: string }; vsockCid: number | null; transports: string[]; agent: { root: string } };
    expect(parsed.kernel.release).toBe(vm.info.release);
    expect(parsed.vsockCid).toBe(vm.guestCid);
    expect(parsed.transports).toEqual([`vsock://any:${AGENT_PORT}`]);
    expect(parsed.agent.root).toBe(ROOT);
    const ls = await vmlink(['ls', uri, '/']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain('dir/');
    // The agent saw the host: CID 2.
    expect(await guestLog()).toMatch(/connected peer=vsock:\/\/2:\d+#\d+ who="vsock cid=2"/);
  });

  it.each([
    ['1 B', 1],
    ['64 KiB', 64 * 1024],
    ['64 MiB', 64 * 1024 * 1024],
  ])('cp %s both ways, SHA-256 checked on the host and in the guest', async (label, size) => {
    const name = `f-${size}.bin`;
    const original = path.join(local, name);
    await writeFile(original, randomBytes(size));
    const expected = await sha256File(original);
    const up = await vmlink(['cp', original, `${uri}:/dir/${name}`], 900_000);
    expect(up.code, `${label} up: ${up.stderr}`).toBe(0);
    expect(up.stdout).toContain(`(${size} bytes), sha256 ${expected} (verified)`);
    expect(await guestSha(`/dir/${name}`)).toBe(expected);
    const back = path.join(local, `back-${name}`);
    const down = await vmlink(['cp', `${uri}:/dir/${name}`, back], 900_000);
    expect(down.code, `${label} down: ${down.stderr}`).toBe(0);
    expect((await stat(back)).size).toBe(size);
    expect(await sha256File(back)).toBe(expected);
    await rm(back);
    await rm(original);
    await vm.run('rm', ['-f', `${ROOT}/dir/${name}`]);
  }, 1_800_000);

  it('exec: output, the remote exit code, and the policy refusal', async () => {
    const uname = await vmlink(['exec', uri, '--', 'uname', '-r']);
    expect(uname).toMatchObject({ code: 0, stdout: `${vm.info.release}\n` });
    const seven = await vmlink(['exec', uri, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(seven).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    const refused = await vmlink(['exec', uri, '--', 'cat', '/etc/passwd']);
    expect(refused.code, refused.stderr).toBe(ExitCode.POLICY);
    expect(refused.stderr).toMatch(/ERR_VMLINK_EXEC_DENIED/);
  });

  it('exec --env, --cwd and --max-output over hvsock:; a name not allowed and a cwd escape (.., a symlink out) are refused', async () => {
    const made = await vm.run('sh', ['-c', `mkdir -p ${ROOT}/dir/sub && ln -sfn /etc ${ROOT}/out`]);
    expect(made.exitCode, made.stderr).toBe(0);
    const ran = await vmlink(['exec', uri, '--env', 'GREETING=hi there', '--cwd', '/dir/sub', '--', 'sh', '-c', 'printf "%s|%s" "$GREETING" "$(pwd -P)"']);
    expect(ran, `${ran.stderr}\n${await guestLog()}`).toMatchObject({ code: 0, stdout: `hi there|${ROOT}/dir/sub` });
    const denied = await vmlink(['exec', uri, '--env', 'SECRET=1', '--', 'sh', '-c', 'echo ran']);
    expect(denied.code, denied.stderr).toBe(ExitCode.POLICY);
    expect(denied.stderr).toMatch(/'SECRET' refused by policy \(allowed: GREETING\).*\[ERR_VMLINK_ENV_DENIED\]/);
    expect(denied.stdout).toBe('');
    for (const cwd of ['../..', '/out']) {
      const escaped = await vmlink(['exec', uri, '--cwd', cwd, '--', 'sh', '-c', 'echo ran']);
      expect(escaped.code, `--cwd ${cwd}: ${escaped.stderr}`).toBe(ExitCode.POLICY);
      expect(escaped.stderr, `--cwd ${cwd}`).toMatch(/\[ERR_VMLINK_PATH_ESCAPE\]/);
      expect(escaped.stdout).toBe('');
    }
    const capped = await vmlink(['exec', uri, '--max-output', '1000', '--', 'sh', '-c', 'seq 1 20000; echo done >&2; exit 4']);
    expect(capped.code, capped.stderr).toBe(4);
    expect(capped.stdout).toBe(SEQ_20000.slice(0, 1000));
    expect(capped.stderr).toBe('done\nvmlink exec: stdout cut at 1000 bytes (--max-output or the agent\'s --exec-max-output); the command\'s exit status is its own\n');
    // The exit record says where each stream was cut (the CLI's note above comes from it).
    const client = await connectAgent(uri, { timeoutMs: Number(CLI_SILENCE_MS) });
    try {
      const out: Buffer[] = [];
      const exit = await client.exec('sh', ['-c', 'seq 1 20000'], async (stream, chunk) => void (stream === 'stdout' && out.push(Buffer.from(chunk))), {
        request: { maxOutput: { stdout: 4096 } },
      });
      expect(Buffer.concat(out).toString('utf8')).toBe(SEQ_20000.slice(0, 4096));
      expect(exit).toMatchObject({ truncated: { stdout: 4096 } });
    } finally {
      await client.close();
    }
  }, 240_000);

  it('a guest port nobody listens on: exit 69 naming the URI and ECONNREFUSED; the agent port still works', async () => {
    // The transport's own code for a VMM that closes before OK is ECONNREFUSED; the
    // CLI files it under "unreachable".
    expect(exitCodeFor('ECONNREFUSED')).toBe(ExitCode.UNREACHABLE);
    const closed = `hvsock:${vsockPath}:4444`;
    const run = await vmlink(['ping', closed]);
    expect(run.code, run.stderr).toBe(ExitCode.UNREACHABLE);
    expect(run.stderr).toContain(`vmlink ping ${closed}:`);
    expect(run.stderr).toMatch(/ECONNREFUSED/);
    expect(run.stderr).toMatch(/\[ERR_VMLINK_UNREACHABLE\]$/m);
    expect(run.stdout).toBe('');
    expect((await vmlink(['ping', uri])).code).toBe(0);
  });

  it('by default the agent refuses a peer inside the guest (vsock CID 1): exit 77 with the reason; the host still gets in', async () => {
    const inside = await vm.run('node', [HOST_CLI, 'ping', '--timeout', CLI_SILENCE_MS, `vsock://1:${AGENT_PORT}`], { timeoutMs: 180_000 });
    expect(inside.exitCode, `${inside.stdout}${inside.stderr}`).toBe(ExitCode.POLICY);
    expect(inside.stderr).toMatch(/ERR_VMLINK_PEER_NOT_ALLOWED/);
    expect(inside.stderr).toMatch(/--allow-cid/);
    expect(inside.stdout).toBe('');
    expect(await guestLog()).toMatch(/connection refused .*code=ERR_VMLINK_PEER_NOT_ALLOWED/);
    expect((await vmlink(['ping', uri])).code).toBe(0);
  }, 240_000);

  it('cp --resume up: the CLI killed mid-upload (the agent frozen meanwhile) leaves the part; the next --resume sends only the rest, SHA-256 checked in the guest', async () => {
    const size = 16 * MIB; // 2 MiB -> the end takes long enough for the guest watcher to see the threshold crossed
    const data = randomBytes(size);
    const sha = createHash('sha256').update(data).digest('hex');
    const original = path.join(local, 'resume.bin');
    await writeFile(original, data);
    const part = `${ROOT}/dir/${uploadPartName('resume.bin', sha)}`;
    // Frozen once its part holds 2 MiB, the agent cannot finish before the CLI is killed.
    const watcher = signalWhenFileHolds(vm, { file: part, bytes: 2 * MIB, signal: 'STOP', pidFile: PID, deadlineS: 300 });
    const copy = spawnVmlink(['cp', '--resume', '--timeout', CLI_SILENCE_MS, original, `${uri}:/dir/resume.bin`]);
    const seen = await interruptedAt(watcher, copy);
    const writesBefore = await guestLogCount(vm, LOG, 'req fs.write');
    copy.child.kill('SIGKILL');
    expect((await copy.done).signal).toBe('SIGKILL');
    await vm.run('sh', ['-c', `kill -CONT $(cat ${PID})`]);
    // The vsock reset ends the write; the agent keeps the part and logs the request.
    await waitForGuestLog(vm, LOG, 'req fs.write', writesBefore);
    const kept = await guestFileSize(vm, part);
    expect(kept).toBeGreaterThanOrEqual(seen);
    expect(kept).toBeLessThan(size);
    expect(await guestParts(vm, `${ROOT}/dir`)).toEqual([path.posix.basename(part)]);

    const resumed = await vmlink(['cp', '--resume', '--json', original, `${uri}:/dir/resume.bin`], 600_000);
    expect(resumed.code, `${resumed.stderr}\n${await guestLog()}`).toBe(0);
    const summary = JSON.parse(resumed.stdout) as { size: number; sha256: string; resumedFrom?: number };
    expect(summary).toMatchObject({ size, sha256: sha, verified: true, resumedFrom: kept });
    // What crossed the link this time: the file minus the kept part (at least 2 MiB fewer).
    expect(size - (summary.resumedFrom ?? 0)).toBeLessThanOrEqual(size - 2 * MIB);
    expect(await guestSha('/dir/resume.bin')).toBe(sha);
    expect(await guestParts(vm, `${ROOT}/dir`)).toEqual([]);
    await vm.run('rm', ['-f', `${ROOT}/dir/resume.bin`]);
  }, 900_000);

  it('cp --resume up: an agent killed mid-upload (the CLI sees the reset: 74) keeps its part; with a byte changed in it the next --resume starts over from 0', async () => {
    const size = 16 * MIB; // 2 MiB -> the end takes long enough for the guest watcher to see the threshold crossed
    const data = randomBytes(size);
    const sha = createHash('sha256').update(data).digest('hex');
    const original = path.join(local, 'again.bin');
    await writeFile(original, data);
    const part = `${ROOT}/dir/${uploadPartName('again.bin', sha)}`;
    const watcher = signalWhenFileHolds(vm, { file: part, bytes: 2 * MIB, signal: 'KILL', pidFile: PID, deadlineS: 300 });
    const copy = spawnVmlink(['cp', '--resume', '--json', '--timeout', CLI_SILENCE_MS, original, `${uri}:/dir/again.bin`]);
    // The CLI may see the reset before the watcher's report reaches the host.
    const seen = await interruptedAt(watcher, copy, { copyMayEndFirst: true });
    const broken = await copy.done;
    expect(broken.code, broken.stderr).toBe(ExitCode.CONNECTION_LOST);
    expect(broken.stderr).toContain(uri);
    const kept = await guestFileSize(vm, part);
    expect(kept).toBeGreaterThanOrEqual(seen);
    expect(kept).toBeLessThan(size);

    await startAgent();
    await setGuestByte(vm, part, 1000, data[1000]! ^ 0xff);
    const restarted = await vmlink(['cp', '--resume', '--json', original, `${uri}:/dir/again.bin`], 600_000);
    expect(restarted.code, `${restarted.stderr}\n${await guestLog()}`).toBe(0);
    const summary = JSON.parse(restarted.stdout) as { size: number; sha256: string; resumedFrom?: number };
    expect(summary).toMatchObject({ size, sha256: sha, verified: true });
    expect(summary.resumedFrom).toBeUndefined(); // the whole file was sent again
    expect(await guestSha('/dir/again.bin')).toBe(sha);
    expect(await guestParts(vm, `${ROOT}/dir`)).toEqual([]);
    await vm.run('rm', ['-f', `${ROOT}/dir/again.bin`]);
  }, 900_000);

  it('an agent killed mid-download: the host sees the vsock reset, exit 74, no half file', async () => {
    const made = await vm.run('sh', ['-c', `truncate -s 4G ${ROOT}/huge.bin`]);
    expect(made.exitCode, made.stderr).toBe(0);
    const target = path.join(local, 'huge.bin');
    // A silence limit far above any stall: unlike virtio-serial, vsock tells the host.
    const copy = spawnVmlink(['cp', '--timeout', '600000', `${uri}:/huge.bin`, target]);
    const partial = async (): Promise<number> => {
      const part = (await readdir(local)).find((n) => n.endsWith('.part'));
      return part ? ((await stat(path.join(local, part)).catch(() => undefined))?.size ?? 0) : 0;
    };
    while ((await partial()) < 1024 * 1024 && copy.child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    expect(copy.child.exitCode, 'the 4 GiB copy cannot have finished').toBeNull();
    const killed = await vm.run('sh', ['-c', `kill -KILL $(cat ${PID})`]);
    expect(killed.exitCode, killed.stderr).toBe(0);
    const result = await copy.done;
    expect(result.code, result.stderr).toBe(ExitCode.CONNECTION_LOST);
    expect(result.stderr).toContain(uri);
    expect((await readdir(local)).filter((n) => n.startsWith('.huge.bin'))).toEqual([]);
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    await vm.run('rm', ['-f', `${ROOT}/huge.bin`]);
  }, 600_000);
});
