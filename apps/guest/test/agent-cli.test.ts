/**
 * The vmlink-guest binary itself (built dist/cli.js): --help, usage errors, several
 * --listen URIs where some cannot be served, the request log, SIGTERM.
 */
import { spawn, spawnSync } from 'node:child_process';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RpcPeer } from '@vmlink/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const GUEST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

describe('vmlink-guest command line', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-agent-cli-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('--help prints the usage and exits 0; a bad flag exits 2 naming it', () => {
    const help = spawnSync(process.execPath, [GUEST_CLI, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: vmlink-guest/);
    const flags = [
      '--listen', '--aio', '--root', '--allow-exec', '--json', '--allow-hardlinks', '--exec-timeout', '--allow-uid', '--allow-cid',
      '--allow-abstract', '--allow-rpcs', '--block-rpcs', '--max-connections', '--max-connections-per-peer', '--idle-timeout',
      '--frame-timeout', '--memory-budget',
    ];
    for (const flag of flags) expect(help.stdout).toContain(flag);
    const bad = spawnSync(process.execPath, [GUEST_CLI, '--aio', 'uring'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("'uring'");
  });

  it('exits 1 when no --listen URI can be served', () => {
    const run = spawnSync(process.execPath, [GUEST_CLI, '--listen', 'virtio-serial:org.vmlink.absent.0'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/cannot listen uri=virtio-serial:org\.vmlink\.absent\.0/);
    expect(run.stderr).toMatch(/ERR_VMLINK_NO_LISTENER/);
  });

  it("with --json, Node's own process warnings become JSON log lines too, with their name and code", async () => {
    // A real warning, raised inside the agent's process once it is ready: a preload that
    // emits one on SIGUSR2 (a timer could fire before the agent's own handlers are in place).
    const preload = path.join(work, 'warn-on-usr2.cjs');
    await writeFile(preload, "process.on('SIGUSR2', () => process.emitWarning('vmlink test warning', { type: 'DeprecationWarning', code: 'DEP_VMLINK_TEST' }));\n");
    const agent = spawn(process.execPath, ['--require', preload, GUEST_CLI, '--listen', `unix:${path.join(work, 'warn.sock')}`, '--json'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    agent.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
    const exited = new Promise<number | null>((resolve) => agent.on('exit', (code) => resolve(code)));
    const waitFor = async (text: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!log.includes(text)) {
        if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`no ${text} in the log:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor('"msg":"ready"');
    agent.kill('SIGUSR2');
    await waitFor('DEP_VMLINK_TEST');
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = parseJsonLog(log);
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'error', msg: 'node warning', name: 'DeprecationWarning', code: 'DEP_VMLINK_TEST' }));
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped' });
  }, 30_000);

  it('serves the URIs it can, logs the ones it cannot, one log line per request, exits 0 on SIGTERM', async () => {
    const socketPath = path.join(work, 'agent.sock');
    const agent = spawn(
      process.execPath,
      [GUEST_CLI, '--listen', 'virtio-serial:org.vmlink.absent.0', '--listen', `unix:${socketPath}`, '--json', '--allow-exec', 'vmlink-no-such-command'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    agent.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
    const exited = new Promise<number | null>((resolve) => agent.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    while (!log.includes('"msg":"ready"')) {
      if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const socket = connect(socketPath);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const rpc = new RpcPeer(socket);
    expect(await rpc.call('ping')).toMatchObject({ pong: true });
    const info = (await rpc.call('info')) as { transports: string[]; agent: { root: string | null }; limits?: unknown };
    expect(info.transports).toEqual([`unix:${socketPath}`]);
    // What a client must respect (vmlink forward sizes its queue from it): the defaults.
    expect(info.limits).toEqual({ maxConnections: expect.any(Number), maxConnectionsPerPeer: expect.any(Number), maxStreamsPerConnection: expect.any(Number), maxForwards: expect.any(Number), streamsPerForward: 1 });
    await expect(rpc.call('fs.stat', { path: '/' })).rejects.toMatchObject({ code: 'ERR_VMLINK_FS_DISABLED' });
    await expect(rpc.call('exec', { command: 'uname' })).rejects.toMatchObject({ code: 'ERR_VMLINK_EXEC_DENIED' });
    // Allowed but not installed: the call itself fails with the errno code.
    await expect(rpc.call('exec', { command: 'vmlink-no-such-command' })).rejects.toMatchObject({ code: 'ENOENT' });
    await rpc.close();
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = parseJsonLog(log);
    // Node 26 under CI load once printed a warning here (before warnings went into the log):
    // show any, so that its cause can be found.
    for (const warning of lines.filter((l) => l['msg'] === 'node warning')) console.warn('vmlink-guest logged a Node warning:', warning);
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'error', msg: 'cannot listen', uri: 'virtio-serial:org.vmlink.absent.0' }));
    const requests = lines.filter((l) => l['kind'] === 'req');
    expect(requests.map((r) => [r['msg'], r['result']])).toEqual([
      ['ping', 'OK'],
      ['info', 'OK'],
      ['fs.stat', 'ERR_VMLINK_FS_DISABLED'],
      ['exec', 'ERR_VMLINK_EXEC_DENIED'],
      ['exec', 'ENOENT'],
    ]);
    for (const r of requests) expect(r).toMatchObject({ peer: expect.stringMatching(/#\d+$/), ms: expect.any(Number) });
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped' });
  }, 60_000);

  it('--allow-hardlinks: a file with a second link (maybe outside the root) is refused unless it is given', async () => {
    const root = path.join(work, 'hardlink-root');
    await mkdir(root);
    await writeFile(path.join(work, 'outside.txt'), 'outside the root\n');
    await link(path.join(work, 'outside.txt'), path.join(root, 'linked.txt'));
    for (const [args, expected] of [
      [[], { code: 'ERR_VMLINK_PATH_ESCAPE' }],
      [['--allow-hardlinks'], { size: 17 }],
    ] as const) {
      const socketPath = path.join(work, `hardlink-${args.length}.sock`);
      const agent = spawn(process.execPath, [GUEST_CLI, '--listen', `unix:${socketPath}`, '--root', root, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      agent.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
      try {
        const deadline = Date.now() + 20_000;
        while (!log.includes(' ready ')) {
          if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start:\n${log}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const socket = connect(socketPath);
        await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        const rpc = new RpcPeer(socket);
        const outcome = await rpc.request('fs.read', { path: '/linked.txt' }).then(
          (response) => {
            response.body?.destroy();
            return response.result;
          },
          (error: { code: string }) => ({ code: error.code }),
        );
        expect(outcome).toMatchObject(expected);
        rpc.destroy();
      } finally {
        agent.kill('SIGKILL');
      }
    }
  }, 60_000);
});

/** Every line of a --json log is one object; a line that is not names itself in the failure. */
function parseJsonLog(log: string): Record<string, unknown>[] {
  return log.trim().split('\n').map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON log line: ${JSON.stringify(line)}\nwhole log:\n${log}`);
    }
  });
}
