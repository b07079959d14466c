// Interop with socat (built with VSOCK support) inside the test guest, both ways.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import { connect } from '@vmlink/vsock';

import { LOOPBACK, listen, pattern, readAll, sha256, tick } from './helpers.mjs';

const SIZE = 4 * 1024 * 1024;

/**
 * Connects once socat's listener is up (a connect before that is reset or refused). Bound
 * by time, not attempts: starting socat under an emulated CPU can take seconds.
 */
async function connectWhenListening(port) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const socket = connect({ cid: LOOPBACK, port });
    const outcome = await new Promise((resolve) => {
      socket.once('connect', () => resolve(null));
      socket.once('error', resolve);
    });
    if (outcome === null) return socket;
    if (Date.now() > deadline) throw outcome;
    await tick(25);
  }
}

function run(command, args, input) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout = [];
  let stderr = '';
  child.stdout.on('data', (chunk) => stdout.push(chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  if (input !== undefined) child.stdin.end(input);
  else child.stdin.end();
  return once(child, 'exit').then(([code]) => ({ code, stdout: Buffer.concat(stdout), stderr }));
}

describe('socat interop over CID 1', () => {
  it('@vmlink/vsock client -> socat server (EXEC:cat echo), byte-exact', async () => {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const socat = spawn('socat', [`VSOCK-LISTEN:${port},reuseaddr,fork`, 'EXEC:cat'], { stdio: 'inherit' });
    try {
      const client = await connectWhenListening(port);
      const data = pattern(SIZE, 11);
      const echoed = readAll(client);
      client.end(data);
      assert.equal(sha256(await echoed), sha256(data));
    } finally {
      socat.kill();
      await once(socat, 'exit');
    }
  });

  it('socat client -> @vmlink/vsock server: socat uploads stdin, the server checks it', async () => {
    const data = pattern(SIZE, 12);
    const received = [];
    const { server, port } = await listen(async (socket) => received.push(await readAll(socket)));
    const result = await run('socat', ['-u', 'STDIN', `VSOCK-CONNECT:${LOOPBACK}:${port}`], data);
    assert.equal(result.code, 0, result.stderr);
    while (received.length === 0) await tick(5);
    assert.equal(sha256(received[0]), sha256(data));
    server.close();
  });

  it('@vmlink/vsock server -> socat client: socat downloads to stdout', async () => {
    const data = pattern(SIZE, 13);
    const { server, port } = await listen((socket) => {
      socket.resume();
      socket.end(data);
    });
    const result = await run('socat', ['-u', `VSOCK-CONNECT:${LOOPBACK}:${port}`, 'STDOUT']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(sha256(result.stdout), sha256(data));
    server.close();
  });
});
