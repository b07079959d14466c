/**
 * Issue 12 §1, detached processes (kata's exec lifecycle): vmlink exec --detach, ps, wait,
 * kill, attach. Real CLI processes against a real agent over a Unix socket, real guest
 * processes; every disconnect is a CLI process that ends or is killed.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DetachedListResult, DetachedProcessInfo } from '@vmlink/agent-protocol';
import { DetachedRecordDecoder, encodeDetachedAck } from '@vmlink/agent-protocol';
import { RpcPeer } from '@vmlink/rpc';
import { type AgentProcess, HOST_CLI, runVmlink, startAgent } from './helpers.js';

/** A CLI child whose stdout we can wait on line by line. */
function interactive(args: readonly string[]) {
  const child = spawn(process.execPath, [HOST_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout.setEncoding('utf8').on('data', (t: string) => {
    stdout += t;
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const until = async (pattern: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const match = pattern.exec(stdout);
      if (match) return match;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited before ${pattern}: ${stdout} ${stderr}`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { child, done, until };
}

function openUnix(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Alive = exists and is not a zombie (a zombie is dead, merely not reaped yet). */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function detach(uri: string, command: readonly string[]): Promise<string> {
  const started = await runVmlink(['exec', '--detach', uri, '--', ...command]);
  expect(started.code, started.stderr).toBe(0);
  const id = started.stdout.trim();
  expect(id).toMatch(/^[0-9a-f]{16}$/);
  return id;
}

async function ps(uri: string): Promise<DetachedListResult> {
  const listed = await runVmlink(['ps', uri, '--json']);
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout) as DetachedListResult;
}

function find(list: DetachedListResult, id: string): DetachedProcessInfo | undefined {
  return list.processes.find((p) => p.id === id);
}

/** Until the agent says an attach client acknowledged `bytes` of stdout (ps: delivered). */
async function untilDelivered(uri: string, id: string, bytes: number): Promise<void> {
  for (let tries = 0; ; tries += 1) {
    const delivered = find(await ps(uri), id)?.stdout.delivered;
    if (delivered === bytes) return;
    if (tries === 100) throw new Error(`stdout of ${id}: delivered ${delivered}, never ${bytes}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** VmRSS / VmHWM (peak) of a process, in bytes. */
/**
 * A baseline: the agent's peak RSS is reset to its current RSS first (clear_refs 5), so a
 * later `peak` is this test's own, not left from an earlier test in the same agent.
 */
async function memoryBaseline(pid: number): Promise<{ rss: number; peak: number }> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
  return memoryOf(pid);
}

async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

describe('detached processes over unix', () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-detached-'));
    // --aio fs: file I/O plays no part here.
    agent = await startAgent(path.join(work, 'agent.sock'), ['--aio', 'fs', '--allow-exec', 'sh,sleep,head']);
  });

  afterAll(async () => {
    await agent?.stop('SIGTERM');
    await rm(work, { recursive: true, force: true });
  });

  it('outlives its client: attach, disconnect mid-way, attach again continues; --from-start replays all; the exit status comes back', async () => {
    // "b" only once the test says so: after the first attach is gone.
    const go = path.join(work, 'go-1');
    const id = await detach(agent.uri, ['sh', '-c', `echo a; while [ ! -e ${go} ]; do sleep 0.05; done; echo b; exit 3`]);
    // First attach: sees "a", then its connection dies (the CLI is killed).
    const first = interactive(['attach', agent.uri, id]);
    await first.until(/^a\n/);
    // Killed once the agent has its acknowledgement of "a" (else "a" would rightly come again).
    await untilDelivered(agent.uri, id, 2);
    first.child.kill('SIGKILL');
    await first.done;
    await writeFile(go, '');
    // Reconnect: continues where the first stopped, to the end and the exit status.
    const again = await runVmlink(['attach', agent.uri, id]);
    expect(again.code, again.stderr).toBe(3);
    expect(again.stdout).toBe('b\n');
    const replay = await runVmlink(['attach', agent.uri, id, '--from-start']);
    expect(replay.code, replay.stderr).toBe(3);
    expect(replay.stdout).toBe('a\nb\n');
    expect(replay.stderr).toBe('');
  });

  it('output sent to a client that died before acknowledging it is shown again; what the CLI wrote out is not; ps shows the continue point', async () => {
    const go = path.join(work, 'go-ack');
    const id = await detach(agent.uri, ['sh', '-c', `echo a; while [ ! -e ${go} ]; do sleep 0.05; done; echo b; exit 3`]);
    // A client that asks to acknowledge, takes "a" and dies without a word: a crash between
    // the agent's send and the client's write.
    const socket = await openUnix(path.join(work, 'agent.sock'));
    const peer = new RpcPeer(socket);
    const silent = new PassThrough();
    const { result, body } = await peer.request('detached.attach', { id, ack: true }, { body: silent });
    expect(result).toMatchObject({ start: { stdout: 0, stderr: 0 }, lost: { stdout: 0, stderr: 0 } });
    const decoder = new DetachedRecordDecoder();
    let seen = '';
    for await (const chunk of body as AsyncIterable<Buffer>) {
      for (const record of decoder.push(chunk)) seen += record.data.toString();
      if (seen === 'a\n') break;
    }
    peer.destroy();
    socket.destroy();
    expect(find(await ps(agent.uri), id)?.stdout).toMatchObject({ total: 2, delivered: 0 });
    await writeFile(go, '');
    // Nothing was acknowledged: the next attach shows "a" again, then the rest.
    const again = await runVmlink(['attach', agent.uri, id]);
    expect(again.code, again.stderr).toBe(3);
    expect(again.stdout).toBe('a\nb\n');
    // The CLI acknowledged all it wrote out: one more attach has nothing left but the status.
    expect(find(await ps(agent.uri), id)?.stdout).toMatchObject({ total: 4, delivered: 4 });
    const last = await runVmlink(['attach', agent.uri, id]);
    expect(last.code, last.stderr).toBe(3);
    expect(last.stdout).toBe('');
  });

  it('attach --json acknowledges only once it printed the JSON: nothing while it collects, everything after', async () => {
    const go = path.join(work, 'go-json');
    const id = await detach(agent.uri, ['sh', '-c', `echo a; while [ ! -e ${go} ]; do sleep 0.05; done; echo b`]);
    const attach = interactive(['attach', agent.uri, id, '--json']);
    // Give "a" time to reach it: a plain attach would have acknowledged it by now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(find(await ps(agent.uri), id)?.stdout).toMatchObject({ total: 2, delivered: 0 });
    await writeFile(go, '');
    const done = await attach.done;
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ id, exitCode: 0, stdout: 'a\nb\n' });
    expect(find(await ps(agent.uri), id)?.stdout).toMatchObject({ total: 4, delivered: 4 });
  });

  it('attach --json collects at most --max-output bytes per stream (the rest cut and said in truncated); --max-output without --json or a bad size is a usage error', async () => {
    const id = await detach(agent.uri, ['sh', '-c', 'head -c 307200 /dev/zero; echo err >&2']);
    expect((await runVmlink(['wait', agent.uri, id])).code).toBe(0);
    const cut = await runVmlink(['attach', agent.uri, id, '--from-start', '--json', '--max-output', '100K']);
    expect(cut.code, cut.stderr).toBe(0);
    const result = JSON.parse(cut.stdout) as { stdout: string; stderr: string; truncated?: unknown };
    expect(result.stdout.length).toBe(100 * 1024);
    expect(result.stderr).toBe('err\n');
    expect(result.truncated).toEqual({ stdout: 100 * 1024 });
    const whole = await runVmlink(['attach', agent.uri, id, '--from-start', '--json']);
    expect((JSON.parse(whole.stdout) as { stdout: string; truncated?: unknown }).stdout.length).toBe(307200);
    expect(JSON.parse(whole.stdout)).not.toHaveProperty('truncated');
    const plain = await runVmlink(['attach', agent.uri, id, '--max-output', '100K']);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/--max-output is for --json/);
    const bad = await runVmlink(['attach', agent.uri, id, '--json', '--max-output', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-output must be a size like 64M or 1048576, got 'lots'/);
  });

  it('a hostile acknowledgement (beyond what was sent, or malformed) ends that attach with ERR_VMLINK_INVALID_PARAMS and moves nothing; the agent serves on', async () => {
    // Still running while the hostile clients attach: their ACKs arrive while the body is live.
    const go = path.join(work, 'go-hostile');
    const id = await detach(agent.uri, ['sh', '-c', `echo hello; while [ ! -e ${go} ]; do sleep 0.05; done`]);
    const hostile = async (ack: Buffer): Promise<unknown> => {
      const socket = await openUnix(path.join(work, 'agent.sock'));
      const peer = new RpcPeer(socket);
      const acks = new PassThrough();
      try {
        const { body } = await peer.request('detached.attach', { id, ack: true }, { body: acks });
        acks.write(ack);
        for await (const chunk of body as AsyncIterable<Buffer>) void chunk;
        return undefined;
      } catch (error) {
        return error;
      } finally {
        peer.destroy();
        socket.destroy();
      }
    };
    // The whole output (6 bytes) may be sent before the ACK arrives: 7 is beyond it either way.
    await expect(hostile(encodeDetachedAck({ stdout: 7, stderr: 0 }))).resolves.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringMatching(/stdout up to byte 7, beyond the \d+ sent/) });
    await expect(hostile(Buffer.from([1, 0, 0, 0, 2, 0x7b, 0x7d]))).resolves.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringMatching(/stdout must be an integer >= 0, got undefined/) });
    expect(find(await ps(agent.uri), id)?.stdout).toMatchObject({ total: 6, delivered: 0 });
    await writeFile(go, '');
    const attached = await runVmlink(['attach', agent.uri, id]);
    expect(attached.code, attached.stderr).toBe(0);
    expect(attached.stdout).toBe('hello\n');
  });

  it('a fresh attach after the client went away sees both lines and the exit status', async () => {
    const id = await detach(agent.uri, ['sh', '-c', 'echo a; sleep 1; echo b']);
    const attached = await runVmlink(['attach', agent.uri, id]);
    expect(attached.code, attached.stderr).toBe(0);
    expect(attached.stdout).toBe('a\nb\n');
    const json = await runVmlink(['attach', agent.uri, id, '--from-start', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id, exitCode: 0, signal: null, stdout: 'a\nb\n', lost: { stdout: 0, stderr: 0 } });
  });

  it('ps shows running and exited processes with pid, exit status, start time and bytes; the table names the command', async () => {
    const running = await detach(agent.uri, ['sleep', '300']);
    const exited = await detach(agent.uri, ['sh', '-c', 'echo out; echo err >&2; exit 5']);
    expect((await runVmlink(['wait', agent.uri, exited])).code).toBe(5);
    const list = await ps(agent.uri);
    const r = find(list, running);
    const e = find(list, exited);
    expect(r).toMatchObject({ state: 'running', command: 'sleep', args: ['300'], exitCode: null, exitedAt: null });
    expect(await alive(r?.pid ?? -1)).toBe(true);
    expect(e).toMatchObject({ state: 'exited', exitCode: 5, signal: null, stdout: { total: 4, kept: 4, dropped: 0 }, stderr: { total: 4, kept: 4, dropped: 0 } });
    expect(e?.startedAt).toBeGreaterThan(Date.now() - 120_000);
    expect(list.limits).toEqual({ maxRunning: 16, maxExited: 16, outputBytes: 1024 * 1024 });
    const table = await runVmlink(['ps', agent.uri]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${running}\\s+${r?.pid}\\s+running\\s+-\\s+.*sleep 300$`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${exited}\\s+\\d+\\s+exited\\s+5\\s+.*4B/0B\\s+4B/0B\\s+sh -c 'echo out; echo err >&2; exit 5'$`, 'm'));
    expect((await runVmlink(['kill', agent.uri, running, '--signal', 'KILL'])).code).toBe(0);
    expect((await runVmlink(['wait', agent.uri, running])).code).toBe(128 + 9);
  });

  it('wait exits with the code; --timeout gives up with 75 while it still runs', async () => {
    const go = path.join(work, 'go-wait');
    const id = await detach(agent.uri, ['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done; exit 7`]);
    const early = await runVmlink(['wait', agent.uri, id, '--timeout', '200ms']);
    expect(early.code, early.stderr).toBe(75);
    expect(early.stderr).toContain('still running');
    await writeFile(go, '');
    const waited = await runVmlink(['wait', agent.uri, id]);
    expect(waited.code, waited.stderr).toBe(7);
    const json = await runVmlink(['wait', agent.uri, id, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id, state: 'exited', exitCode: 7 });
  });

  it('kill by id signals the whole process group: a grandchild gets the signal too', async () => {
    // The leader and a grandchild both trap TERM and say so; the leader then waits for the
    // grandchild, so both lines come only if the signal reached the group, not the leader alone.
    const grandchild = 'trap "echo grandchild got TERM; exit 0" TERM; echo grandchild $$; while :; do sleep 0.1; done';
    const leader = `trap "echo leader got TERM" TERM; sh -c '${grandchild}' & wait; wait`;
    const id = await detach(agent.uri, ['sh', '-c', leader]);
    const watching = interactive(['attach', agent.uri, id]);
    const grandchildPid = Number((await watching.until(/^grandchild (\d+)$/m))[1]);
    expect(await alive(grandchildPid)).toBe(true);
    const killed = await runVmlink(['kill', agent.uri, id, '--signal', 'TERM']);
    expect(killed.code, killed.stderr).toBe(0);
    const done = await watching.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('grandchild got TERM');
    expect(done.stdout).toContain('leader got TERM');
    expect(await alive(grandchildPid)).toBe(false);
    // Once exited, kill delivers nothing and says so.
    const late = await runVmlink(['kill', agent.uri, id]);
    expect(late.code).toBe(0);
    expect(late.stderr).toContain('had exited already');
  });

  it('an unknown id is ERR_VMLINK_NO_SUCH_PROCESS (66) for wait, kill and attach; a bad signal is a usage error', async () => {
    for (const command of ['wait', 'kill', 'attach']) {
      const run = await runVmlink([command, agent.uri, '00000000deadbeef']);
      expect(run.code, `${command}: ${run.stderr}`).toBe(66);
      expect(run.stderr).toContain('no detached process with that id');
      expect(run.stderr).toContain("'00000000deadbeef'");
      expect(run.stderr).toContain('[ERR_VMLINK_NO_SUCH_PROCESS]');
    }
    const bad = await runVmlink(['kill', agent.uri, '00000000deadbeef', '--signal', 'STOP']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--signal must be one of TERM, INT, KILL, HUP, QUIT, got 'STOP'");
  });

  it('the exec policy applies: a command not in --allow-exec is refused (77)', async () => {
    const refused = await runVmlink(['exec', '--detach', agent.uri, '--', 'uname']);
    expect(refused.code).toBe(77);
    expect(refused.stderr).toContain('[ERR_VMLINK_EXEC_DENIED]');
  });
});

describe('detached processes: limits and memory', () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-detached-limits-'));
    agent = await startAgent(path.join(work, 'agent.sock'), [
      '--aio', 'fs', '--allow-exec', 'sh,sleep,head', '--max-detached', '2', '--max-detached-exited', '2', '--detached-output', '64K',
    ]);
  });

  afterAll(async () => {
    await agent?.stop('SIGTERM');
    await rm(work, { recursive: true, force: true });
  });

  it('a 512 MiB flood with nobody attached: the ring keeps 64 KiB, counts the rest as dropped, agent RSS stays bounded', async () => {
    const agentPid = agent.child.pid as number;
    const before = await memoryBaseline(agentPid);
    const total = 512 * 1024 * 1024;
    const id = await detach(agent.uri, ['head', '-c', String(total), '/dev/zero']);
    const waited = await runVmlink(['wait', agent.uri, id], { timeoutMs: 110_000 });
    expect(waited.code, waited.stderr).toBe(0);
    const info = find(await ps(agent.uri), id);
    expect(info?.stdout).toEqual({ total, kept: 64 * 1024, dropped: total - 64 * 1024, delivered: 0 });
    const after = await memoryOf(agentPid);
    // Had the agent kept the output, its peak would have grown by 512 MiB. V8 frees the read
    // buffers (external memory) only after ~64 MiB of them piled up since the last GC (Node
    // 24 shows ~80 MiB of growth here, Node 20 less): a quarter of the flood is the bound.
    expect(after.peak - before.rss).toBeLessThan(128 * 1024 * 1024);
    // attach says what was lost and hands over what was kept.
    const attached = spawn(process.execPath, [HOST_CLI, 'attach', agent.uri, id, '--from-start'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let stderr = '';
    attached.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    attached.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const code = await new Promise<number | null>((resolve) => attached.on('close', resolve));
    expect(code, stderr).toBe(0);
    expect(bytes).toBe(64 * 1024);
    expect(stderr).toContain(`${total - 64 * 1024} bytes of stdout were dropped before this attach`);
  });

  it('a reader that stalls while the process floods: the process is not slowed, the gap is counted, received + dropped = written', async () => {
    const total = 32 * 1024 * 1024;
    const go = path.join(work, 'go-flood');
    const id = await detach(agent.uri, ['sh', '-c', `echo ready >&2; while [ ! -e ${go} ]; do sleep 0.05; done; head -c ${total} /dev/zero`]);
    const attached = spawn(process.execPath, [HOST_CLI, 'attach', agent.uri, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const ready = new Promise<void>((resolve) =>
      attached.stderr.setEncoding('utf8').on('data', (t: string) => {
        stderr += t;
        if (stderr.includes('ready')) resolve();
      }),
    );
    const closed = new Promise<number | null>((resolve) => attached.on('close', resolve));
    // Attached (stderr flows), but nobody reads its stdout: the CLI blocks, so does the agent's send.
    await Promise.race([ready, closed.then((code) => Promise.reject(new Error(`attach ended (${code}) before 'ready': ${stderr}`)))]);
    const agentPid = agent.child.pid as number;
    const before = await memoryBaseline(agentPid);
    await writeFile(go, '');
    const waited = await runVmlink(['wait', agent.uri, id], { timeoutMs: 110_000 });
    expect(waited.code, waited.stderr).toBe(0);
    expect((await memoryOf(agentPid)).peak - before.rss).toBeLessThan(64 * 1024 * 1024);
    let received = 0;
    attached.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
    expect(await closed, stderr).toBe(0);
    const gaps = [...stderr.matchAll(/(\d+) bytes of stdout were dropped while we were reading too slowly/g)].map((m) => Number(m[1]));
    expect(gaps.length).toBeGreaterThan(0);
    const dropped = gaps.reduce((a, b) => a + b, 0);
    expect(received + dropped).toBe(total);
    // What got through: what was in flight before the stall, plus the 64 KiB the ring kept.
    expect(received).toBeLessThan(total / 2);
  });

  it('at most --max-detached run at once (ERR_VMLINK_DETACHED_LIMIT, 75); a slot frees when one ends', async () => {
    const one = await detach(agent.uri, ['sleep', '300']);
    const two = await detach(agent.uri, ['sleep', '300']);
    const third = await runVmlink(['exec', '--detach', agent.uri, '--', 'sleep', '300']);
    expect(third.code).toBe(75);
    expect(third.stderr).toContain('[ERR_VMLINK_DETACHED_LIMIT]');
    expect(third.stderr).toContain('--max-detached 2');
    expect((await runVmlink(['kill', agent.uri, one, '--signal', 'KILL'])).code).toBe(0);
    expect((await runVmlink(['wait', agent.uri, one])).code).toBe(137);
    const fourth = await detach(agent.uri, ['sh', '-c', 'exit 0']);
    expect((await runVmlink(['wait', agent.uri, fourth])).code).toBe(0);
    await runVmlink(['kill', agent.uri, two, '--signal', 'KILL']);
    expect((await runVmlink(['wait', agent.uri, two])).code).toBe(137);
  });

  it('only the last --max-detached-exited exited ones are remembered: the oldest exited is forgotten first', async () => {
    const ids: string[] = [];
    for (const code of [11, 12, 13]) {
      const id = await detach(agent.uri, ['sh', '-c', `exit ${code}`]);
      expect((await runVmlink(['wait', agent.uri, id])).code).toBe(code);
      ids.push(id);
    }
    const list = await ps(agent.uri);
    expect(list.processes.filter((p) => p.state === 'exited')).toHaveLength(2);
    expect(list.processes.map((p) => p.id)).toEqual([ids[1], ids[2]]);
    const forgotten = await runVmlink(['wait', agent.uri, ids[0] as string]);
    expect(forgotten.code).toBe(66);
    expect(forgotten.stderr).toContain('[ERR_VMLINK_NO_SUCH_PROCESS]');
  });
});

describe('detached processes: not enabled, and agent shutdown', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-detached-off-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('--max-detached 0: ERR_VMLINK_DETACHED_DISABLED (77), said in words', async () => {
    const agent = await startAgent(path.join(work, 'off.sock'), ['--aio', 'fs', '--allow-exec', 'sleep', '--max-detached', '0']);
    try {
      const refused = await runVmlink(['exec', '--detach', agent.uri, '--', 'sleep', '1']);
      expect(refused.code).toBe(77);
      expect(refused.stderr).toContain('detached processes are not enabled on this agent');
      expect(refused.stderr).toContain('[ERR_VMLINK_DETACHED_DISABLED]');
    } finally {
      await agent.stop('SIGTERM');
    }
  });

  it('the agent kills every detached process group when it shuts down (SIGTERM)', async () => {
    const agent = await startAgent(path.join(work, 'stop.sock'), ['--aio', 'fs', '--allow-exec', 'sleep,sh']);
    const id = await detach(agent.uri, ['sh', '-c', 'sleep 300 & echo $!; wait']);
    const watching = interactive(['attach', agent.uri, id]);
    const childPid = Number((await watching.until(/^(\d+)$/m))[1]);
    watching.child.kill('SIGKILL');
    const leader = find(await ps(agent.uri), id)?.pid ?? -1;
    expect(await alive(leader)).toBe(true);
    expect(await alive(childPid)).toBe(true);
    expect(await agent.stop('SIGTERM')).toBe(0);
    // The agent has exited: its 'exit' hook SIGKILLed the groups synchronously on the way out.
    for (let i = 0; i < 100 && ((await alive(leader)) || (await alive(childPid))); i += 1) await new Promise((r) => setTimeout(r, 50));
    expect(await alive(leader)).toBe(false);
    expect(await alive(childPid)).toBe(false);
  });
});
