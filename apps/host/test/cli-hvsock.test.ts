/**
 * The CLI with `hvsock:` URIs on the host alone. The VMM is a test double (a few lines of
 * node:net playing Firecracker's hybrid-vsock socket: read `CONNECT <port>\n`, answer
 * `OK <n>\n` and bridge to a real vmlink-guest on a Unix socket, or close for a port
 * nobody listens on). The real thing, through a guest's virtio-vsock device, is
 * agent-hvsock.vm.test.ts; this one proves the URI handling everywhere the CLI takes a
 * URI, including cp's split when the VMM socket path holds ':/'.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import { type AgentProcess, runVmlink, startAgent } from './helpers.js';

const GUEST_PORT = 1024;
/** The double answers this port with something that is not `OK <n>`. */
const GARBLED_PORT = 5555;
/** The double never answers a CONNECT to this port (a Firecracker guest whose driver is not up yet). */
const SILENT_PORT = 6666;
/** The double refuses the first LATE_REFUSALS connects to this port, then bridges it (an agent still starting). */
const LATE_PORT = 7777;
const LATE_REFUSALS = 3;

/**
 * The VMM double: `CONNECT 1024` is bridged to `agentSocket`, `CONNECT 5555` gets a reply
 * that is not `OK`, 6666 no reply at all, 7777 is closed 3 times and then bridged; any
 * other port is closed unanswered (the guest's RST).
 */
function hybridVsockDouble(vmmSocket: string, agentSocket: string): Promise<Server> {
  const sockets = new Set<Socket>();
  let lateConnects = 0;
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    let line = '';
    const onData = (chunk: Buffer): void => {
      line += chunk.toString('latin1');
      const end = line.indexOf('\n');
      if (end < 0) return;
      client.off('data', onData);
      const port = /^CONNECT (\d+)$/.exec(line.slice(0, end))?.[1];
      if (port === String(GARBLED_PORT)) {
        client.end('ERROR no such thing\n');
        return;
      }
      if (port === String(SILENT_PORT)) return;
      if (port === String(LATE_PORT)) lateConnects += 1;
      const bridged = port === String(GUEST_PORT) || (port === String(LATE_PORT) && lateConnects > LATE_REFUSALS);
      if (!bridged) {
        client.destroy();
        return;
      }
      const guest = connect(agentSocket, () => {
        // Firecracker answers with the host-side port it allocated (>= 2^30).
        client.write('OK 1073741824\n');
        const rest = Buffer.from(line.slice(end + 1), 'latin1');
        if (rest.length > 0) guest.write(rest);
        client.pipe(guest).pipe(client);
      });
      sockets.add(guest);
      guest.on('close', () => sockets.delete(guest));
      guest.on('error', () => client.destroy());
      client.on('close', () => guest.destroy());
    };
    client.on('data', onData);
  });
  server.on('close', () => {
    for (const socket of sockets) socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(vmmSocket, () => resolve(server));
  });
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

describe('vmlink with hvsock: URIs (the VMM is a test double on a Unix socket)', () => {
  let work: string;
  let root: string;
  let agent: AgentProcess;
  let vmm: Server;
  let vmmSocket: string;
  let uri: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-hvsock-cli-'));
    root = path.join(work, 'root');
    await mkdir(path.join(root, 'dir'), { recursive: true });
    await writeFile(path.join(root, 'dir', 'hello.txt'), 'hello over hvsock\n');
    agent = await startAgent(path.join(work, 'agent.sock'), ['--root', root, '--allow-exec', 'echo']);
    // A directory named 'a:' puts ':/' in the VMM socket path, which cp must not split at.
    await mkdir(path.join(work, 'a:'));
    vmmSocket = path.join(work, 'a:', 'v.sock');
    vmm = await hybridVsockDouble(vmmSocket, path.join(work, 'agent.sock'));
    uri = `hvsock:${vmmSocket}:${GUEST_PORT}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise<void>((resolve) => (vmm ? vmm.close(() => resolve()) : resolve()));
    await agent?.stop('SIGKILL');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('ping, info, ls and exec take an hvsock: URI', async () => {
    const ping = await runVmlink(['ping', uri, '--count', '2']);
    expect(ping.code, ping.stderr).toBe(0);
    expect(ping.stdout).toContain(`pong from ${uri}: seq=2`);
    const info = await runVmlink(['info', uri, '--json']);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ agent: { root } });
    const ls = await runVmlink(['ls', uri, '/dir']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain('hello.txt');
    const exec = await runVmlink(['exec', uri, '--', 'echo', 'hi']);
    expect(exec).toMatchObject({ code: 0, stdout: 'hi\n' });
    const viaOption = await runVmlink(['--uri', uri, 'ls', '/dir']);
    expect(viaOption.code, viaOption.stderr).toBe(0);
  });

  it('cp splits hvsock:PATH:PORT:/remote after the port, even with ":/" in PATH', async () => {
    const down = path.join(work, 'hello.txt');
    const got = await runVmlink(['cp', `${uri}:/dir/hello.txt`, down]);
    expect(got.code, got.stderr).toBe(0);
    expect(await readFile(down, 'utf8')).toBe('hello over hvsock\n');
    const upload = path.join(work, 'up.txt');
    await writeFile(upload, 'uploaded over hvsock\n');
    const put = await runVmlink(['cp', upload, `${uri}:/dir/up.txt`]);
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toContain(`sha256 ${sha256('uploaded over hvsock\n')} (verified)`);
    expect(await readFile(path.join(root, 'dir', 'up.txt'), 'utf8')).toBe('uploaded over hvsock\n');
    // The explicit form as well.
    const explicit = await runVmlink(['--uri', uri, 'cp', ':/dir/up.txt', path.join(work, 'up-back.txt')]);
    expect(explicit.code, explicit.stderr).toBe(0);
  });

  it('--wait keeps dialing while the VMM refuses the port (agent not up yet), then gets through', async () => {
    const run = await runVmlink(['ping', `hvsock:${vmmSocket}:${LATE_PORT}`, '--wait', '--timeout', '100000']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`pong from hvsock:${vmmSocket}:${LATE_PORT}`);
  });

  it('a VMM that never answers CONNECT: exit 75 after --timeout', async () => {
    const silentUri = `hvsock:${vmmSocket}:${SILENT_PORT}`;
    const run = await runVmlink(['ping', silentUri, '--timeout', '300']);
    expect(run.code, run.stderr).toBe(ExitCode.TIMEOUT);
    expect(run.stderr).toContain(silentUri);
    expect(run.stderr).toMatch(/\[ERR_VMLINK_TIMEOUT\]/);
  });

  it('a port the VMM refuses (closed before OK), a reply that is not OK, a missing VMM socket and bad hvsock URIs get their own exit codes', async () => {
    const refusedUri = `hvsock:${vmmSocket}:4444`;
    const refused = await runVmlink(['ping', refusedUri]);
    expect(refused.code, refused.stderr).toBe(ExitCode.UNREACHABLE);
    expect(refused.stderr).toMatch(/ECONNREFUSED/);
    expect(refused.stderr).toContain(refusedUri);
    const garbledUri = `hvsock:${vmmSocket}:${GARBLED_PORT}`;
    const garbled = await runVmlink(['ping', garbledUri]);
    expect(garbled.code, garbled.stderr).toBe(ExitCode.PROTOCOL);
    expect(garbled.stderr).toMatch(/ERR_VMLINK_HVSOCK_BAD_REPLY|ERROR no such thing/);
    expect(garbled.stderr).toContain(garbledUri);
    const missing = await runVmlink(['ping', `hvsock:${path.join(work, 'none.sock')}:1024`]);
    expect(missing.code, missing.stderr).toBe(ExitCode.UNREACHABLE);
    expect(missing.stderr).toMatch(/ENOENT/);
    for (const bad of [`hvsock:${vmmSocket}`, 'hvsock://host:1', `hvsock:${vmmSocket}:4294967296`, 'hvsock::1024']) {
      const run = await runVmlink(['ping', bad]);
      expect(run.code, `${bad}: ${run.stderr}`).toBe(ExitCode.USAGE);
      expect(run.stderr).toMatch(/ERR_VMLINK_INVALID_ADDRESS/);
      expect(run.stderr).toContain(bad);
    }
    // cp without a port: the general split rule, and the transport names the URI.
    const noPort = await runVmlink(['cp', `hvsock:${path.join(work, 'v.sock')}:/dir/x`, path.join(work, 'x')]);
    expect(noPort.code, noPort.stderr).toBe(ExitCode.USAGE);
    expect(noPort.stderr).toContain(`hvsock:${path.join(work, 'v.sock')}`);
  });
});
