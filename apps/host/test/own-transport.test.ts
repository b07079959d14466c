/**
 * Issue 12 §4: a third-party transport plugin (examples/transport-tcp, plain ESM written
 * from the plugin guide) used by both apps, as CLIs (--transport, VMLINK_TRANSPORTS) and
 * as libraries (the `transports` option). Real agent and CLI processes over loopback TCP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'vmlink-guest';
import { connectAgent } from '../src/rpc-client.js';
import { ExitCode } from '../src/exit-codes.js';
import { GUEST_CLI, HOST_CLI, type CliRun } from './helpers.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const EXAMPLE = './examples/transport-tcp';
const { tcp } = (await import(path.join(REPO, 'examples/transport-tcp/index.js'))) as { tcp: () => import('@vmlink/transport').Transport };

interface TcpAgent {
  child: ChildProcess;
  uri: string;
  log(): string;
  exited: Promise<number | null>;
}

/** vmlink-guest with the example plugin, on an ephemeral loopback port (read back from its log). */
async function startTcpAgent(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<TcpAgent> {
  const child = spawn(process.execPath, [GUEST_CLI, '--json', '--listen', 'tcp://127.0.0.1:0', ...args], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const uri = await new Promise<string>((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      log += text;
      const listening = /"msg":"listening","uri":"(tcp:\/\/[^"]+)"/.exec(log);
      if (listening && log.includes('"msg":"ready"')) resolve(listening[1] as string);
    });
    void exited.then((code) => reject(new Error(`agent exited ${code}:\n${log}`)));
  });
  return { child, uri, log: () => log, exited };
}

function vmlink(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HOST_CLI, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('own transports: examples/transport-tcp in both apps', () => {
  let work: string;
  let root: string;
  let agent: TcpAgent;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-tcp-'));
    root = path.join(work, 'root');
    await mkdir(root);
    await writeFile(path.join(root, 'hello.txt'), 'hello over tcp\n');
    // The plugin from the environment, a relative path resolved against the agent's cwd.
    agent = await startTcpAgent(['--root', root, '--allow-exec', 'echo', '--trust-transport', 'tcp'], { ...process.env, VMLINK_TRANSPORTS: EXAMPLE });
  });

  afterAll(async () => {
    agent?.child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('the agent serves tcp:// and the CLI reaches it with --transport', async () => {
    const ping = await vmlink(['ping', agent.uri, '--transport', EXAMPLE]);
    expect(ping.code, ping.stderr).toBe(0);
    expect(ping.stdout).toContain(`pong from ${agent.uri}`);
    const info = await vmlink(['info', agent.uri, '--json', '--transport', `${EXAMPLE}#tcp`]);
    expect(info.code, info.stderr).toBe(0);
    expect((JSON.parse(info.stdout) as { transports: string[] }).transports).toEqual([agent.uri]);
    expect(agent.log()).toMatch(/"msg":"own transports","transports":"tcp \(tcp:\)"/);
  });

  it('files and exec over it (VMLINK_TRANSPORTS on the CLI side)', async () => {
    const env = { ...process.env, VMLINK_TRANSPORTS: path.join(REPO, EXAMPLE) };
    const data = randomBytes(3 * 1024 * 1024 + 7);
    await writeFile(path.join(work, 'up.bin'), data);
    const up = await vmlink(['cp', path.join(work, 'up.bin'), `${agent.uri}:/up.bin`], env);
    expect(up.code, up.stderr).toBe(0);
    const down = await vmlink(['cp', `${agent.uri}:/up.bin`, path.join(work, 'down.bin')], env);
    expect(down.code, down.stderr).toBe(0);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(sha(await readFile(path.join(work, 'down.bin')))).toBe(sha(data));
    const exec = await vmlink(['exec', agent.uri, '--', 'echo', 'over', 'tcp'], env);
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toBe('over tcp\n');
  });

  it('without --transport the CLI names the scheme nobody handles (exit 2)', async () => {
    const run = await vmlink(['ping', agent.uri], { ...process.env, VMLINK_TRANSPORTS: '' });
    expect(run.code).toBe(ExitCode.USAGE);
    expect(run.stderr).toMatch(/no transport handles scheme 'tcp:'/);
  });

  it('a plugin that cannot be loaded is a usage error naming it, in both apps', async () => {
    const cli = await vmlink(['ping', 'tcp://127.0.0.1:1', '--transport', './no/such-plugin.js']);
    expect(cli.code).toBe(ExitCode.USAGE);
    expect(cli.stderr).toMatch(/transport plugin '\.\/no\/such-plugin\.js': cannot find .*\[ERR_VMLINK_TRANSPORT_PLUGIN\]/);
    const ambiguous = await vmlink(['ping', 'tcp://127.0.0.1:1', '--transport', `${EXAMPLE}#nope`]);
    expect(ambiguous.code).toBe(ExitCode.USAGE);
    expect(ambiguous.stderr).toMatch(/exports no function 'nope' \(functions: .*tcp/);
    const notTransport = await vmlink(['ping', 'tcp://127.0.0.1:1', '--transport', 'node:os#hostname']);
    expect(notTransport.code).toBe(ExitCode.USAGE);
    expect(notTransport.stderr).toMatch(/returned .*not a Transport/);
    const guest = spawn(process.execPath, [GUEST_CLI, '--listen', 'tcp://127.0.0.1:0', '--transport', './no/such-plugin.js'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    guest.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
    const code = await new Promise<number | null>((resolve) => guest.on('exit', resolve));
    expect(code).toBe(1);
    expect(log).toMatch(/cannot start code=ERR_VMLINK_TRANSPORT_PLUGIN cause=.*no\/such-plugin\.js/);
  });

  it('an agent that does not trust the transport refuses its peers (77, in words)', async () => {
    const untrusted = await startTcpAgent(['--transport', EXAMPLE]);
    try {
      const run = await vmlink(['ping', untrusted.uri, '--transport', EXAMPLE]);
      expect(run.code).toBe(ExitCode.POLICY);
      expect(run.stderr).toMatch(/refused this connection: transport 'tcp' reports no peer identity to check \(--trust-transport tcp serves it\).*\[ERR_VMLINK_PEER_NOT_ALLOWED\]/);
    } finally {
      untrusted.child.kill('SIGKILL');
    }
  });

  it('as libraries: Agent.start and connectAgent with a transports option', async () => {
    const server = await Agent.start({ listen: ['tcp://127.0.0.1:0'], transports: [tcp()], access: { trustTransports: ['tcp'] }, root });
    try {
      const [uri] = server.listening;
      const client = await connectAgent(uri as string, { timeoutMs: 20_000, transports: [tcp()] });
      try {
        expect((await client.ping()).time).toBeGreaterThan(0);
        expect((await client.stat('/hello.txt')).size).toBe(15);
      } finally {
        await client.close();
      }
    } finally {
      await server.shutdown();
    }
  });
});
