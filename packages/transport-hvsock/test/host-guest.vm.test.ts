// Host <-> guest for real: ONE QEMU TCG guest with a virtio-vsock device
// (@vmlink/vhost-user-vsock through testvm's `vsock: true`), the host on hybrid vsock at
// vm.vsockPath, the guest on plain AF_VSOCK.
//   1. host dials guest: the compliance suite over hvsock:, the peer a guest vsock listener;
//   2. guest dials host: the compliance suite over vsock:// in the guest, the peer an
//      hvsock: listener on the host;
//   3. peers nobody here wrote: socat in the guest (VSOCK-LISTEN, VSOCK-CONNECT:2:P), and
//      socat on the host (UNIX-CONNECT + a CONNECT line, UNIX-LISTEN on <vsockPath>_P)
//      against @vmlink/transport-vsock in the guest.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as vitest from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTransportCompliance, servePeer } from '@vmlink/compliance/transport';
import type { Connection, Listener } from '@vmlink/transport';
import { hvsock, HvsockTransport, type HvsockConnection } from '@vmlink/transport-hvsock';
import { runGuestNodeTest, startVm, type Vm } from '@vmlink/testvm';
import { replyWithSha256 } from './sha-reply.js';
import { untilListening } from './unix-listening.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const guestDir = fileURLToPath(new URL('./guest', import.meta.url));
const BOOT_TIMEOUT_MS = 300_000;
const GUEST_PEER_PORT = 5000;
const HOST_PEER_PORT = 6000;
const NOBODY_PORT = 6999;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const transport = hvsock();
const CAPABILITIES_OF_HVSOCK = transport.capabilities;

let vm: Vm | undefined;
let booting: Promise<Vm> | undefined;

/** The one guest of this file, booted by whichever part needs it first. */
function guest(): Promise<Vm> {
  booting ??= startVm({ share: repoRoot, memoryMiB: 1024, cpus: 2, vsock: true, withPrograms: ['socat'] }).then((started) => {
    vm = started;
    return started;
  });
  return booting;
}

/** The guest, once booted (the suite asks for addresses only after startPeer). */
function booted(): Vm {
  if (vm === undefined) throw new Error('the guest did not boot');
  return vm;
}

function vsockPath(v: Vm): string {
  const path = v.vsockPath;
  if (path === undefined) throw new Error('startVm({ vsock: true }) gave no vm.vsockPath');
  return path;
}

/** Run a command in the guest in the background (it outlives the run() call). */
async function guestBackground(v: Vm, command: string): Promise<void> {
  const started = await v.run('sh', ['-c', `${command} >/tmp/bg.log 2>&1 </dev/null &`]);
  expect(started.exitCode, started.stderr).toBe(0);
}

/** Dial until the guest listener is up: before that the device closes without OK. */
async function dialWhenListening(address: string): Promise<HvsockConnection> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await transport.dial(address, { timeout: 30_000 })) as HvsockConnection;
    } catch (error) {
      if ((error as { code?: string }).code !== 'ECONNREFUSED' || attempt >= 300) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100)); // no event says "the guest listens"
    }
  }
}

afterAll(async () => {
  await vm?.stop();
}, 60_000);

// 1. The host's dialing half. Listening on the host is exercised by part 2 (the guest's
// dials land on a host hvsock: listener); the listener lifecycle checks need a dial that
// reaches the host's own listener, which host<->guest cannot give (through a forwarder in
// the guest, a dial to a closed host listener would still get OK). They run against the
// muxer test double in compliance.test.ts.
class DialOnlyHvsock extends HvsockTransport {
  override readonly capabilities = { ...CAPABILITIES_OF_HVSOCK, listen: false };
}
const dialOnly = new DialOnlyHvsock();

describe('host -> guest', () => {
  describeTransportCompliance(
    {
      transport: dialOnly,
      async startPeer() {
        const v = await guest();
        await guestBackground(v, `node ${guestDir}/vsock-peer.mjs ${GUEST_PEER_PORT}`);
        const address = `hvsock:${vsockPath(v)}:${GUEST_PEER_PORT}`;
        (await dialWhenListening(address)).destroy();
        return { address, close: async () => {} };
      },
      // The guest has no listener on this port: the device closes without OK.
      unreachableAddress: () => `hvsock:${vsockPath(booted())}:${NOBODY_PORT}`,
      child: { module: '@vmlink/transport-hvsock', factory: 'hvsock' },
      timeoutMs: BOOT_TIMEOUT_MS,
    },
    vitest,
  );
});

describe('guest -> host', () => {
  let listener: Listener | undefined;

  beforeAll(async () => {
    const v = await guest();
    listener = await transport.listen(`hvsock:${vsockPath(v)}:${HOST_PEER_PORT}`);
    servePeer(listener);
  }, BOOT_TIMEOUT_MS);

  afterAll(async () => {
    await listener?.close();
  });

  it('the compliance suite over vsock:// in the guest passes against a host hvsock: listener', async () => {
    const result = await runGuestNodeTest(await guest(), `${guestDir}/host-peer.test.mjs`, {
      env: { VMLINK_HOST_PEER_PORT: String(HOST_PEER_PORT), VMLINK_HOST_NOBODY_PORT: String(NOBODY_PORT) },
      timeoutMs: 900_000,
    });
    expect(result.exitCode, result.output).toBe(0);
  }, 910_000);
});

describe('against socat in the guest', () => {
  it('host dials socat VSOCK-LISTEN (EXEC:cat): 1 MiB echoed byte-exact, half-close both ways', async () => {
    const v = await guest();
    await guestBackground(v, 'socat VSOCK-LISTEN:5100,reuseaddr,fork EXEC:cat');
    const connection = await dialWhenListening(`hvsock:${vsockPath(v)}:5100`);
    expect(connection.hostPort).toBe(5100); // this device echoes the guest port
    const payload = randomBytes(1024 * 1024);
    const chunks: Buffer[] = [];
    connection.on('data', (chunk: Buffer) => chunks.push(chunk));
    connection.end(payload); // cat sees EOF after the last byte and ends: our 'end'
    await once(connection, 'end');
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
    connection.destroy();
  }, BOOT_TIMEOUT_MS);

  it('socat VSOCK-CONNECT:2:P in the guest reaches a host hvsock: listener; 1 MiB checked by SHA-256 both ends', async () => {
    const v = await guest();
    await using listener = await transport.listen(`hvsock:${vsockPath(v)}:6100`);
    const received = replyWithSha256(listener);
    const run = await v.run(
      'sh',
      ['-c', 'head -c 1048576 /dev/urandom > /tmp/g2h && sha256sum /tmp/g2h && socat -t 60 - VSOCK-CONNECT:2:6100 < /tmp/g2h'],
      { timeoutMs: 120_000 },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    const [guestDigest, hostReply] = run.stdout.trim().split('\n').map((line) => line.split(' ')[0]);
    expect(await received).toBe(guestDigest);
    expect(hostReply).toBe(guestDigest);
  }, BOOT_TIMEOUT_MS);

  it("a guest's connection names the device's process as peer (SO_PEERCRED): the VMM side, not QEMU, not the guest", async () => {
    const v = await guest();
    await using listener = await transport.listen(`hvsock:${vsockPath(v)}:6200`);
    const accepted = new Promise<Connection>((resolve) => listener.once('connection', resolve));
    const run = v.run('sh', ['-c', 'echo hi | socat -t 30 - VSOCK-CONNECT:2:6200'], { timeoutMs: 120_000 });
    const connection = await accepted;
    // testvm serves the vsock device (@vmlink/vhost-user-vsock) in this process: it is what
    // connects to <vsockPath>_6200. QEMU (vm.pid) only forwards the rings to it.
    expect(connection.peer).toEqual({ uid: process.getuid!(), gid: process.getgid!(), pid: process.pid });
    expect(connection.peer?.pid).not.toBe(v.pid);
    connection.end('bye\n');
    connection.resume();
    expect((await run).exitCode).toBe(0);
  }, BOOT_TIMEOUT_MS);

  it('a guest port nobody listens on: dial fails with ECONNREFUSED naming the address', async () => {
    const v = await guest();
    const address = `hvsock:${vsockPath(v)}:${NOBODY_PORT}`;
    await expect(transport.dial(address, { timeout: 30_000 })).rejects.toMatchObject({ code: 'ECONNREFUSED', address });
  }, BOOT_TIMEOUT_MS);
});

describe('socat on the host against @vmlink/transport-vsock in the guest, through the device', () => {
  it('socat UNIX-CONNECT + a CONNECT line reaches the guest compliance peer (vsock listener): OK, then 1 MiB echoed', async () => {
    const v = await guest();
    await guestBackground(v, `node ${guestDir}/vsock-peer.mjs 5300`);
    (await dialWhenListening(`hvsock:${vsockPath(v)}:5300`)).destroy();
    const payload = randomBytes(1024 * 1024);
    const input = Buffer.concat([Buffer.from('CONNECT 5300\necho\n'), payload]);
    const child = spawn('socat', ['-t', '30', '-', `UNIX-CONNECT:${vsockPath(v)}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stdin.end(input);
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    const output = Buffer.concat(chunks);
    const newline = output.indexOf(0x0a);
    expect(output.subarray(0, newline + 1).toString()).toBe('OK 5300\n');
    expect(sha256(output.subarray(newline + 1))).toBe(sha256(payload));
  }, BOOT_TIMEOUT_MS);

  it('socat UNIX-LISTEN on <vsockPath>_P (EXEC:cat) answers a guest dial to vsock://2:P: 1 MiB echoed, half-close', async () => {
    const v = await guest();
    const path = `${vsockPath(v)}_6200`;
    const child = spawn('socat', [`UNIX-LISTEN:${path}`, 'EXEC:cat'], { stdio: ['ignore', 'ignore', 'inherit'] });
    try {
      await untilListening(path);
      const run = await v.run('node', [`${guestDir}/dial-host.mjs`, '6200', String(1024 * 1024)], { cwd: guestDir, timeoutMs: 120_000 });
      expect(run.exitCode, run.stderr).toBe(0);
      const [sent, received] = run.stdout.trim().split(' ');
      expect(received).toBe(sent);
    } finally {
      child.kill('SIGKILL');
    }
  }, BOOT_TIMEOUT_MS);
});
