/**
 * Who may connect and what they may call (default deny), against a real agent process:
 * SO_PEERCRED uids (a second uid for real when the tests run as root), abstract sockets,
 * --allow-rpcs/--block-rpcs. Every refusal has a code, is logged once, and the agent
 * keeps serving. vsock CIDs are checked for real in limits.vm.test.ts (CID 1 in a guest);
 * here the pure decision.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FrameDecoder, encodeFrame, type Frame } from '@vmlink/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideAccess } from '../src/access/peer-access.js';
import { callOnce, closeReason, rpcClient, startAgent } from './helpers.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

/**
 * Connects as `uid` (a child process; needs root), sends one ping, and returns the frames
 * the agent sent until it closed or answered.
 */
async function pingAs(uid: number, socketPath: string): Promise<Frame[]> {
  const request = Buffer.concat(encodeFrame({ type: 'REQUEST', id: 1, method: 'ping', params: {}, stream: undefined })).toString('base64');
  const script = `
    const socket = require('net').connect(${JSON.stringify(socketPath)});
    socket.on('connect', () => socket.write(Buffer.from('${request}', 'base64')));
    socket.on('data', (d) => process.stdout.write(d.toString('hex') + '\\n'));
    socket.on('error', (e) => { process.stderr.write(e.code + '\\n'); process.exit(3); });
    socket.on('end', () => process.exit(0));
    setTimeout(() => process.exit(0), 5000);`;
  const child = spawn(process.execPath, ['-e', script], { uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`client as uid ${uid} failed (${code}): ${err}`);
  const frames: Frame[] = [];
  new FrameDecoder(1024 * 1024).feed(Buffer.from(out.replace(/\n/g, ''), 'hex'), {
    frame: (frame) => frames.push(frame),
    malformed: () => undefined,
  });
  return frames;
}

describe('access control', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-access-'));
    await chmod(work, 0o755); // a second uid must reach the socket inside
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('by default only the agent own uid is served; others are refused with a code, logged once per connection', async () => {
    const own = await startAgent(path.join(work, 'own.sock'), []);
    try {
      expect(await callOnce(own.socketPath, 'ping')).toMatchObject({ ok: { pong: true } });
    } finally {
      await own.stop();
    }
    const strict = await startAgent(path.join(work, 'strict.sock'), ['--allow-uid', '12345']);
    try {
      for (let i = 0; i < 20; i += 1) {
        const peer = await rpcClient(strict.socketPath);
        const reason = closeReason(peer);
        await expect(peer.call('ping')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_CLOSED' });
        expect(await reason).toBe('ERR_VMLINK_PEER_NOT_ALLOWED');
      }
      expect(strict.child.exitCode).toBeNull(); // still serving
      const refusals = strict.lines().filter((l) => l['msg'] === 'connection refused');
      // 20 refusals from one uid: a few lines, the rest summed up later.
      expect(refusals.length).toBeGreaterThan(0);
      expect(refusals.length).toBeLessThanOrEqual(5);
      expect(refusals[0]).toMatchObject({ kind: 'warn', code: 'ERR_VMLINK_PEER_NOT_ALLOWED', cause: expect.stringContaining(`uid ${process.getuid?.()}`) });
      expect(strict.lines().some((l) => l['kind'] === 'req')).toBe(false); // nothing ran
    } finally {
      await strict.stop();
    }
  }, 60_000);

  it.runIf(isRoot)('another uid (really connecting as nobody) is refused by default and served when allowed', async () => {
    const socketPath = path.join(work, 'nobody.sock');
    const agent = await startAgent(socketPath, []);
    try {
      // The socket is 0600: give it to nobody so the kernel lets it connect at all.
      await chown(socketPath, NOBODY, NOBODY);
      const refused = await pingAs(NOBODY, socketPath);
      expect(refused).toEqual([expect.objectContaining({ type: 'ERROR', id: null, error: expect.objectContaining({ code: 'ERR_VMLINK_PEER_NOT_ALLOWED' }) })]);
      expect(agent.log()).toMatch(/uid 65534 is not allowed/);
      expect(await callOnce(socketPath, 'ping')).toMatchObject({ ok: { pong: true } }); // root still is
    } finally {
      await agent.stop();
    }
    const widened = await startAgent(socketPath, ['--allow-uid', `0,${NOBODY}`]);
    try {
      await chown(socketPath, NOBODY, NOBODY);
      const served = await pingAs(NOBODY, socketPath);
      expect(served).toEqual([expect.objectContaining({ type: 'RESPONSE', id: 1, result: expect.objectContaining({ pong: true }) })]);
    } finally {
      await widened.stop();
    }
  }, 60_000);

  it('abstract sockets are refused at start-up unless --allow-abstract', async () => {
    const name = `vmlink-access-${process.pid}`;
    const refused = await startAgent(`@${name}`, [], { noWait: true });
    expect(await refused.exited).toBe(2);
    expect(refused.log()).toContain(`unix:@${name}`);
    expect(refused.log()).toContain('--allow-abstract');
    const allowed = await startAgent(`@${name}`, ['--allow-abstract']);
    try {
      expect(await callOnce(`\0${name}`, 'ping')).toMatchObject({ ok: { pong: true } });
    } finally {
      await allowed.stop();
    }
  }, 60_000);

  it('--allow-rpcs/--block-rpcs: info lists what is served; a blocked method is refused with a code, logged once per connection', async () => {
    const agent = await startAgent(path.join(work, 'rpcs.sock'), ['--allow-rpcs', 'ping,info,fs.stat,exec', '--block-rpcs', 'exec']);
    try {
      const peer = await rpcClient(agent.socketPath);
      const info = (await peer.call('info')) as { methods: string[] };
      expect(info.methods).toEqual(['ping', 'info', 'fs.stat']);
      for (let i = 0; i < 10; i += 1) {
        await expect(peer.call('exec', { command: 'sh' })).rejects.toMatchObject({ code: 'ERR_VMLINK_METHOD_BLOCKED', message: expect.stringContaining("'exec'") });
        await expect(peer.call('fs.read', { path: '/x' })).rejects.toMatchObject({ code: 'ERR_VMLINK_METHOD_BLOCKED' });
      }
      expect(await peer.call('ping')).toMatchObject({ pong: true }); // the connection lives on
      peer.destroy();
      const blocked = agent.lines().filter((l) => l['kind'] === 'req' && l['result'] === 'ERR_VMLINK_METHOD_BLOCKED');
      expect(blocked).toHaveLength(1); // 20 refusals on one connection, one line
    } finally {
      await agent.stop();
    }
    const unknown = await startAgent(path.join(work, 'typo.sock'), ['--block-rpcs', 'fs.nuke'], { noWait: true });
    expect(await unknown.exited).toBe(2);
    expect(unknown.log()).toContain("'fs.nuke'");
  }, 60_000);

  it('an agent listening on hvsock: serves the VMM by its uid (SO_PEERCRED) without --trust-transport, and refuses other uids', async () => {
    // A guest-initiated hvsock connection is a Unix connection from the VMM to <path>_<PORT>:
    // this test process plays the VMM.
    const vsockPath = path.join(work, 'v.sock');
    const served = await startAgent(path.join(work, 'hv-own.sock'), ['--listen', `hvsock:${vsockPath}:1024`]);
    try {
      expect(await callOnce(`${vsockPath}_1024`, 'ping')).toMatchObject({ ok: { pong: true } });
    } finally {
      await served.stop();
    }
    const strict = await startAgent(path.join(work, 'hv-strict.sock'), ['--listen', `hvsock:${vsockPath}:1025`, '--allow-uid', '12345']);
    try {
      const peer = await rpcClient(`${vsockPath}_1025`);
      const reason = closeReason(peer);
      await expect(peer.call('ping')).rejects.toMatchObject({ code: 'ERR_VMLINK_RPC_CLOSED' });
      expect(await reason).toBe('ERR_VMLINK_PEER_NOT_ALLOWED');
      expect(strict.log()).toMatch(/uid \d+ \(the VMM's\) is not allowed/);
    } finally {
      await strict.stop();
    }
  }, 60_000);

  it('decides hvsock peers by uid like unix (pure)', () => {
    const defaults = { allowUids: [1000], allowCids: [2] as const };
    expect(decideAccess({ transport: 'hvsock', uid: 1000, pid: 7 }, defaults)).toMatchObject({ allowed: true, key: 'uid:1000' });
    expect(decideAccess({ transport: 'hvsock', uid: 0 }, defaults)).toMatchObject({ allowed: false, code: 'ERR_VMLINK_PEER_NOT_ALLOWED', message: expect.stringContaining("uid 0 (the VMM's)") });
    expect(decideAccess({ transport: 'hvsock' }, { ...defaults, trustTransports: ['hvsock'] })).toMatchObject({ allowed: false, key: 'hvsock:unknown' });
  });

  it('decides vsock peers by CID (host only by default), virtio-serial always, anything unidentified never (pure)', () => {
    const defaults = { allowUids: [0], allowCids: [2] };
    expect(decideAccess({ transport: 'vsock', cid: 2 }, defaults)).toMatchObject({ allowed: true, key: 'cid:2' });
    for (const cid of [1, 3, 0xffff_ffff]) {
      expect(decideAccess({ transport: 'vsock', cid }, defaults)).toMatchObject({ allowed: false, code: 'ERR_VMLINK_PEER_NOT_ALLOWED', message: expect.stringContaining(`CID ${cid}`) });
    }
    expect(decideAccess({ transport: 'vsock', cid: 1 }, { ...defaults, allowCids: [1] })).toMatchObject({ allowed: true });
    expect(decideAccess({ transport: 'vsock', cid: 77 }, { ...defaults, allowCids: 'any' })).toMatchObject({ allowed: true });
    expect(decideAccess({ transport: 'vsock' }, { ...defaults, allowCids: 'any' })).toMatchObject({ allowed: false });
    expect(decideAccess({ transport: 'virtio-serial' }, defaults)).toMatchObject({ allowed: true });
    expect(decideAccess({ transport: 'unix' }, defaults)).toMatchObject({ allowed: false, message: expect.stringContaining('SO_PEERCRED') });
    expect(decideAccess({ transport: 'tcp' }, defaults)).toMatchObject({ allowed: false });
  });
});
