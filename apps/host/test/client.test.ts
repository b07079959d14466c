import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcPeer } from '@vmlink/rpc';
import { connectAgent } from '../src/rpc-client.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A stand-in agent on a real Unix socket: an RpcPeer with the given handlers per connection. */
async function fakeAgent(onConnection: (socket: Socket) => void): Promise<{ uri: string; server: Server }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'vmlink-host-client-'));
  const socketPath = path.join(dir, 'agent.sock');
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  cleanups.push(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { uri: `unix:${socketPath}`, server };
}

describe('RpcAgentClient', () => {
  it('100 concurrent calls waiting on an agent that does not read yet: no MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));
    let agentSocket!: Socket;
    let onAccept!: () => void;
    const accepted = new Promise<void>((resolve) => (onAccept = resolve));
    const { uri } = await fakeAgent((socket) => {
      agentSocket = socket;
      socket.pause(); // reads nothing until every call is queued on the client
      onAccept();
    });
    const client = await connectAgent(uri, { timeoutMs: 30_000 });
    cleanups.push(() => void client.close());
    await accepted;
    // 100 stats with 8 KiB paths: far more than the socket buffers take, so most calls
    // wait for 'drain' on the client (one listener each used to be added).
    const longPath = `/${'d'.repeat(8 * 1024)}`;
    const calls = Array.from({ length: 100 }, (_, i) => client.stat(`${longPath}/${i}`));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const agent = new RpcPeer(agentSocket, {
      maxFrameSize: 1024 * 1024,
      handlers: { 'fs.stat': (params) => ({ path: (params as { path: string }).path, type: 'file', size: 0 }) },
    });
    cleanups.push(() => agent.destroy());
    const results = await Promise.all(calls);
    expect(results.map((r) => r.path)).toEqual(Array.from({ length: 100 }, (_, i) => `${longPath}/${i}`));
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
  });
});
