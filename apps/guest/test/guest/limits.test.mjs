// Runs INSIDE a testvm guest (limits.vm.test.ts): vmlink-guest on vsock, clients over
// vsock loopback (CID 1). Default deny of CIDs, the connection cap, the idle timeout and
// unread replies, each against its own agent process. Every wait is on an event or the
// agent's log; no step depends on how fast the guest runs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { encodeFrame, RpcPeer } from '@vmlink/rpc';
import { vsock } from '@vmlink/transport-vsock';

const GUEST_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const transport = vsock();
let nextPort = 2100;

/** Starts vmlink-guest on a fresh vsock port; resolves once it logged 'ready'. */
async function startAgent(args) {
  const port = nextPort++;
  const child = spawn(process.execPath, [GUEST_CLI, '--listen', `vsock://any:${port}`, '--json', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const waiters = new Set();
  child.stderr.setEncoding('utf8').on('data', (t) => {
    log += t;
    for (const wake of waiters) wake();
  });
  const waitForLog = (pattern) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (pattern.test(log)) {
          waiters.delete(check);
          resolve();
        } else if (child.exitCode !== null) {
          waiters.delete(check);
          reject(new Error(`agent exited ${child.exitCode}:\n${log}`));
        }
      };
      waiters.add(check);
      child.once('exit', check);
      check();
    });
  await waitForLog(/"msg":"ready"/);
  return {
    port,
    pid: child.pid,
    log: () => log,
    waitForLog,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}

async function client(port) {
  const peer = new RpcPeer(await transport.dial(`vsock://1:${port}`));
  peer.on('warning', () => undefined);
  return peer;
}

/** The code of the id-less ERROR the agent sends before it closes a connection. */
function closeReason(peer) {
  return new Promise((resolve) => {
    let reason;
    peer.on('warning', (warning) => {
      if (warning.remote) reason ??= warning.code;
    });
    peer.once('close', () => resolve(reason));
  });
}

function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

test('vsock peers other than the host (CID 2) are refused by default; --allow-cid 1 admits the loopback peer', async () => {
  const strict = await startAgent([]);
  try {
    const peer = await client(strict.port);
    const reason = closeReason(peer);
    await assert.rejects(peer.call('ping'), { code: 'ERR_VMLINK_RPC_CLOSED' });
    assert.equal(await reason, 'ERR_VMLINK_PEER_NOT_ALLOWED');
    await strict.waitForLog(/"msg":"connection refused".*CID 1 is not allowed/);
  } finally {
    await strict.stop();
  }
  const open = await startAgent(['--allow-cid', '1']);
  try {
    const peer = await client(open.port);
    assert.equal((await peer.call('ping')).pong, true);
    peer.destroy();
  } finally {
    await open.stop();
  }
});

test('connection cap over vsock: with every slot of the peer busy, a newcomer is refused with a code', async () => {
  // 4 slots, 3 for one peer.
  const agent = await startAgent(['--allow-cid', '1', '--max-connections', '4', '--allow-exec', 'sh']);
  const busy = [];
  try {
    for (let i = 0; i < 3; i += 1) {
      const peer = await client(agent.port);
      const { body } = await peer.request('exec', { command: 'sh', args: ['-c', 'sleep 1000'] });
      body.on('error', () => undefined).resume();
      busy.push(peer);
    }
    const refused = await client(agent.port);
    const reason = closeReason(refused);
    await assert.rejects(refused.call('ping'), { code: 'ERR_VMLINK_RPC_CLOSED' });
    assert.equal(await reason, 'ERR_VMLINK_TOO_MANY_CONNECTIONS');
    for (const peer of busy) peer.destroy();
    await agent.waitForLog(/"msg":"disconnected"/);
  } finally {
    for (const peer of busy) peer.destroy();
    await agent.stop();
  }
});

test('idle timeout over vsock closes a silent connection with a code; the agent serves on', async () => {
  const agent = await startAgent(['--allow-cid', '1', '--idle-timeout', '3000']);
  try {
    const silent = await client(agent.port);
    assert.equal(await closeReason(silent), 'ERR_VMLINK_IDLE_TIMEOUT');
    const next = await client(agent.port);
    assert.equal((await next.call('ping')).pong, true);
    next.destroy();
  } finally {
    await agent.stop();
  }
});

test('pipelined pings whose replies are never read: bounded agent memory, others served', async () => {
  const agent = await startAgent(['--allow-cid', '1']);
  try {
    const before = rssKiB(agent.pid);
    const connection = await transport.dial(`vsock://1:${agent.port}`);
    connection.on('error', () => undefined);
    connection.pause(); // never read
    const ping = Buffer.concat(encodeFrame({ type: 'REQUEST', id: 7, method: 'ping', params: {}, stream: undefined }));
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
    // ~18 MB of requests at once (buffered on our side): the agent stops reading once
    // its unread replies pass its write cap. Sample its memory while other clients are
    // served, 20 times over.
    for (let i = 0; i < 100; i += 1) connection.write(batch);
    let peak = 0;
    for (let i = 0; i < 20; i += 1) {
      const other = await client(agent.port);
      assert.equal((await other.call('ping')).pong, true);
      other.destroy();
      peak = Math.max(peak, rssKiB(agent.pid) - before);
    }
    assert.ok(peak < 64 * 1024, `agent RSS grew by ${peak} KiB`);
    const other = await client(agent.port);
    assert.equal((await other.call('ping')).pong, true);
    other.destroy();
    connection.destroy();
  } finally {
    await agent.stop();
  }
});
