/**
 * Issue 12 §2 in a guest: an HTTP service inside a QEMU guest, `vmlink forward` on the
 * host, over host<->guest vsock (hvsock:, one agent connection per TCP connection) and
 * over virtio-serial (every TCP connection multiplexed over the one RPC connection, each
 * as its own flow-controlled streams). Parallel node:http requests, a stalled reader
 * while the others flow, curl, a download by SHA-256, and for virtio-serial: a forward
 * quiet past the agent's idle timeout, and the redial after the agent idle-closed the
 * shared connection. One VM for the file.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTestVm, type GuestVm } from '../src/testvm.js';
import { patternSha256 } from './fixtures/http-service.mjs';
import { ExitCode } from '../src/exit-codes.js';
import { GUEST_CLI, runVmlink, spawnVmlink } from './helpers.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const SERVICE = fileURLToPath(new URL('./fixtures/http-service.mjs', import.meta.url));
const PORT = 'org.vmlink.agent.0';
const AGENT_PORT = 1024;
const HTTP_PORT = 8080;
/** Allowed for wait-port, served only once a test starts a service there. */
const LATE_PORT = 8081;
/** Allowed, never served. */
const NEVER_PORT = 8082;
const LOG = '/tmp/vmlink-agent.log';
/** Short, so the redial after an idle close is seen within the test. */
const IDLE_MS = 2000;

interface Answer {
  status: number;
  body: string;
}

function get(port: number, url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (t: string) => (body += t));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function downloadSha(port: number, url: string): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** curl on the host (the issue asks for it; provisioned in scripts/provision.mjs). */
function curl(url: string): Promise<{ code: number | null; sha256: string; bytes: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '--fail', '--max-time', '120', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, sha256: hash.digest('hex'), bytes, stderr }));
  });
}

interface Forward {
  fwd: ReturnType<typeof spawnVmlink>;
  port: number;
  stderr: () => string;
}

async function startForward(uri: string): Promise<Forward> {
  const fwd = spawnVmlink(['forward', uri, `0:127.0.0.1:${HTTP_PORT}`, '--json']);
  let stderr = '';
  fwd.child.stderr?.on('data', (t: Buffer) => (stderr += t.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    fwd.child.stdout?.on('data', (t: Buffer) => {
      text += t.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0] as string);
    });
    fwd.child.once('exit', (code) => reject(new Error(`forward over ${uri} exited ${code}: ${stderr}`)));
  });
  return { fwd, port: Number((JSON.parse(line) as { listening: string }).listening.split(':').pop()), stderr: () => stderr };
}

/** Asks for MIB MiB and never reads: a stalled stream. */
function stalledReader(port: number, mib: number): Promise<ReturnType<typeof connect>> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.pause();
      socket.write(`GET /big/${mib} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

describe('vmlink forward to an HTTP service in a QEMU guest', () => {
  let vm: GuestVm;
  const forwards = new Map<string, Forward>();
  const guestLog = async (): Promise<string> => (await vm.run('cat', [LOG])).stdout;
  let hasCurl = false;

  beforeAll(async () => {
    vm = await (await loadTestVm()).startVm({ share: repoRoot, ports: [PORT], memoryMiB: 1024, timeoutMs: 240_000, vsock: true });
    if (vm.vsockPath === undefined) throw new Error('startVm({ vsock: true }) gave no vsockPath');
    const agent = [
      'node', GUEST_CLI, '--listen', `virtio-serial:${PORT}`, '--listen', `vsock://any:${AGENT_PORT}`,
      '--allow-forward', `127.0.0.1:${HTTP_PORT},127.0.0.1:${LATE_PORT},127.0.0.1:${NEVER_PORT}`,
      // Default limits: 100 forwards at once are more than the agent takes (--max-streams 16
      // on the one virtio-serial connection, two requests each; 56 connections per peer and
      // 2 MiB of --memory-budget each over vsock): vmlink forward makes the rest wait.
      '--idle-timeout', String(IDLE_MS),
    ].join(' ');
    const script = `(setsid node ${SERVICE} ${HTTP_PORT} >/tmp/http.log 2>&1 </dev/null &)
(setsid ${agent} >${LOG} 2>&1 </dev/null &)
for i in $(seq 1 400); do grep -q ' ready ' ${LOG} && grep -q listening /tmp/http.log && exit 0; sleep 0.2; done; exit 1`;
    const started = await vm.run('sh', ['-c', script], { timeoutMs: 120_000 });
    if (started.exitCode !== 0) throw new Error(`agent or service did not start in the guest:\n${await guestLog()}`);
    forwards.set('vsock', await startForward(`hvsock:${vm.vsockPath}:${AGENT_PORT}`));
    forwards.set('virtio-serial', await startForward(`virtio-serial+unix:${vm.portPath(PORT)}`));
    hasCurl = await new Promise((resolve) => spawn('sh', ['-c', 'command -v curl'], { stdio: 'ignore' }).on('close', (code) => resolve(code === 0)));
  }, 300_000);

  afterAll(async () => {
    for (const { fwd } of forwards.values()) {
      fwd.child.kill('SIGINT');
      await fwd.done;
    }
    await vm?.stop();
  });

  // virtio-serial: all 100 over the one connection, two RPC streams each (~10 s at load 4,
  // ~45 s at load 15; the whole file 42-78 s plus the boot).
  for (const [transport, parallel] of [['vsock', 100], ['virtio-serial', 100]] as const) {
    it(`${transport}: ${parallel} parallel node:http requests, and 20 more flow past a stalled reader`, async () => {
      const { port, stderr } = forwards.get(transport) as Forward;
      const settled = await Promise.allSettled(Array.from({ length: parallel }, (_, i) => get(port, `/r/${transport}-${i}`)));
      const failed = settled.filter((s) => s.status === 'rejected').length;
      if (failed > 0) {
        await new Promise((r) => setTimeout(r, 2000)); // the forward's reports of why may trail the hang-ups
        throw new Error(`${failed} of ${parallel} requests failed; vmlink forward said:\n${stderr()}`);
      }
      const answers = settled.map((s) => (s as PromiseFulfilledResult<Answer>).value);
      answers.forEach((a, i) => expect([a.status, a.body], `${stderr()}\n${transport} #${i}`).toEqual([200, `ok /r/${transport}-${i}`]));

      const stalled = await stalledReader(port, 64);
      try {
        const during = await Promise.all(Array.from({ length: 20 }, (_, i) => get(port, `/s/${i}`)));
        during.forEach((a, i) => expect(a.body).toBe(`ok /s/${i}`));
        // The stalled stream is still open (not failed, not finished): it only waits for its reader.
        expect(stalled.destroyed).toBe(false);
      } finally {
        stalled.destroy();
      }
    }, 180_000);

    it(`${transport}: 16 MiB by SHA-256 through node:http and through curl`, async () => {
      const { port, stderr } = forwards.get(transport) as Forward;
      const expected = patternSha256(16);
      const got = await downloadSha(port, '/big/16');
      expect(got, stderr()).toEqual({ bytes: 16 * 1024 * 1024, sha256: expected });
      // curl is provisioned on the CI image; without it this part cannot run here.
      if (!hasCurl) return;
      const small = await curl(`http://127.0.0.1:${port}/r/curl`);
      expect(small.code, small.stderr).toBe(0);
      const big = await curl(`http://127.0.0.1:${port}/big/16`);
      expect([big.code, big.bytes, big.sha256], big.stderr).toEqual([0, 16 * 1024 * 1024, expected]);
    }, 180_000);
  }

  // "Is the guest ready": wait-port against services in the guest, over each transport.
  it('wait-port over vsock and virtio-serial: a service up, one that comes up while waiting, one never up (75), a port not allowed (77)', async () => {
    const uris = { vsock: `hvsock:${vm.vsockPath as string}:${AGENT_PORT}`, 'virtio-serial': `virtio-serial+unix:${vm.portPath(PORT)}` };
    for (const [name, uri] of Object.entries(uris)) {
      const up = await runVmlink(['wait-port', uri, `127.0.0.1:${HTTP_PORT}`, '--timeout', '60s'], { timeoutMs: 90_000 });
      expect(up.code, `${name}: ${up.stderr}`).toBe(0);
      expect(up.stdout).toContain(`127.0.0.1:${HTTP_PORT} in the guest accepts connections`);

      const waiting = spawnVmlink(['wait-port', uri, `127.0.0.1:${LATE_PORT}`, '--timeout', '120s']);
      // Not up yet: the service starts only once the agent has logged a probe of this wait-port.
      const probes = async (): Promise<number> => (await guestLog()).split('req net.probe').length;
      const probesBefore = await probes();
      const deadline = Date.now() + 60_000;
      while ((await probes()) === probesBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(waiting.child.exitCode, name).toBeNull();
      const started = await vm.run('sh', ['-c', `(setsid node ${SERVICE} ${LATE_PORT} >/tmp/late.log 2>&1 </dev/null & echo $! >/tmp/late.pid)`]);
      expect(started.exitCode).toBe(0);
      try {
        const late = await waiting.done;
        expect(late.code, `${name}: ${late.stderr}`).toBe(0);
        expect(late.stdout).toContain(`127.0.0.1:${LATE_PORT} in the guest accepts connections`);
      } finally {
        // Gone before the next transport's turn, which needs the port closed again.
        const stopped = await vm.run('sh', ['-c', `kill $(cat /tmp/late.pid) && while kill -0 $(cat /tmp/late.pid) 2>/dev/null; do sleep 0.05; done`]);
        expect(stopped.exitCode, stopped.stderr).toBe(0);
      }

      const never = await runVmlink(['wait-port', uri, `127.0.0.1:${NEVER_PORT}`, '--timeout', '5s'], { timeoutMs: 60_000 });
      expect(never.code, `${name}: ${never.stderr}`).toBe(ExitCode.TIMEOUT);
      expect(never.stderr).toMatch(/did not accept connections in time; last: .*ECONNREFUSED/);

      const denied = await runVmlink(['wait-port', uri, '127.0.0.1:22'], { timeoutMs: 60_000 });
      expect(denied.code, `${name}: ${denied.stderr}`).toBe(ExitCode.POLICY);
      expect(denied.stderr).toMatch(/\[ERR_VMLINK_FORWARD_DENIED\]/);
    }
  }, 300_000);

  it('vsock: a 256 MiB download by SHA-256 through node:http', async () => {
    const { port, stderr } = forwards.get('vsock') as Forward;
    const got = await downloadSha(port, '/big/256');
    expect(got, stderr()).toEqual({ bytes: 256 * 1024 * 1024, sha256: patternSha256(256) });
  }, 300_000);

  it('virtio-serial: a forward quiet past the idle timeout stays open; after an idle close the next connection redials', async () => {
    const { port, stderr } = forwards.get('virtio-serial') as Forward;
    const quiet = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => quiet.once('connect', resolve).once('error', reject));
    // The first TCP connection may itself redial (the shared connection idled since the last test).
    let text = '';
    quiet.setEncoding('utf8').on('data', (t: string) => (text += t));
    const ended = new Promise((resolve) => quiet.once('end', resolve));
    // Quiet for 2.5x the agent's idle timeout: the open forward keeps the connection busy.
    await new Promise((r) => setTimeout(r, IDLE_MS * 2.5));
    const redialsBefore = stderr().split('reconnected').length;
    quiet.write('GET /r/quiet HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await ended;
    quiet.destroy();
    expect(text.endsWith('ok /r/quiet'), `${text}\n${stderr()}`).toBe(true);
    expect(stderr().split('reconnected').length).toBe(redialsBefore);

    // No forward open: the agent closes the shared connection after IDLE_MS (1x-2x), and
    // the next TCP connection is carried over a new one. Waited for on the agent's log (a
    // new idle close), not a fixed time: the guest's timer may run late under TCG.
    const idleCloses = async (): Promise<number> => (await guestLog()).split('ERR_VMLINK_IDLE_TIMEOUT').length;
    const idleBefore = await idleCloses();
    const idleDeadline = Date.now() + 60_000;
    while ((await idleCloses()) === idleBefore && Date.now() < idleDeadline) await new Promise((r) => setTimeout(r, IDLE_MS / 2));
    expect(await idleCloses(), 'the agent never closed the idle shared connection').toBeGreaterThan(idleBefore);
    const after = await get(port, '/r/after-idle');
    expect(after.body, stderr()).toBe('ok /r/after-idle');
    expect(stderr().split('reconnected').length).toBe(redialsBefore + 1);
  }, 120_000);
});
