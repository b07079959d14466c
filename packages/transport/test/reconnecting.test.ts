import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reconnecting, type Connection, type Listener, type ReconnectingClient, type RetryInfo } from '@vmlink/transport';
import { unix } from '@vmlink/transport-unix';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-reconnecting-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const freshAddress = (): string => `unix:${join(dir, `r${counter++}.sock`)}`;
const transport = unix();
const fast = { initialDelay: 5, maxDelay: 40, factor: 2, jitter: 0.5 };

function next(client: ReconnectingClient, event: 'up' | 'down' | 'retry' | 'close'): Promise<unknown> {
  // The typed EventEmitter wants per-event listeners; this helper only needs the first argument.
  const emitter = client as unknown as { once(event: string, listener: (value?: unknown) => void): void };
  return new Promise((resolve) => emitter.once(event, (value) => resolve(value)));
}

/** A server that can be started and stopped at one address, like a guest that reboots. */
class FlakyServer {
  listener: Listener | undefined;
  readonly accepted: Connection[] = [];
  constructor(readonly address: string) {}
  async start(): Promise<void> {
    this.listener = await transport.listen(this.address);
    this.listener.on('connection', (c) => {
      this.accepted.push(c);
      c.on('error', () => {});
      c.pipe(c);
    });
  }
  /** Stop listening and drop every connection (the guest went away). */
  async stop(): Promise<void> {
    await this.listener?.close();
    for (const c of this.accepted.splice(0)) c.destroy();
  }
}

async function echoes(connection: Connection, text: string): Promise<void> {
  connection.write(text);
  const [chunk] = (await new Promise((resolve) => connection.once('data', (d: Buffer) => resolve([d])))) as [Buffer];
  expect(chunk.toString()).toBe(text);
}

describe('reconnecting() over the unix transport', () => {
  it('retries with backoff until the server appears, then reports up', async () => {
    const server = new FlakyServer(freshAddress());
    const client = reconnecting(transport, server.address, { backoff: fast });
    const retries: RetryInfo[] = [];
    client.on('retry', (info) => retries.push(info));
    await next(client, 'retry');
    await next(client, 'retry');
    expect(client.state).not.toBe('up');
    expect(retries[0]?.error).toMatchObject({ code: 'ENOENT', syscall: 'connect' });
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
    const up = next(client, 'up');
    await server.start();
    const connection = (await up) as Connection;
    expect(client.state).toBe('up');
    expect(client.connection).toBe(connection);
    await echoes(connection, 'hello');
    await client.close();
    await server.stop();
  });

  it('reports down when the server goes away and up again when it comes back', async () => {
    const server = new FlakyServer(freshAddress());
    await server.start();
    const client = reconnecting(transport, server.address, { backoff: fast });
    const first = await client.waitForConnection();
    await echoes(first, 'one');

    const down = next(client, 'down');
    const retried = next(client, 'retry');
    await server.stop();
    await down;
    expect(client.connection).toBeUndefined();
    await retried; // the server is gone: dials fail and back off

    const up = next(client, 'up');
    await server.start();
    const second = (await up) as Connection;
    expect(second).not.toBe(first);
    await echoes(second, 'two');
    await client.close();
    await server.stop();
  });

  it('async iteration yields each new Connection and ends on close()', async () => {
    const server = new FlakyServer(freshAddress());
    await server.start();
    const client = reconnecting(transport, server.address, { backoff: fast });
    const seen: Connection[] = [];
    for await (const connection of client) {
      seen.push(connection);
      await echoes(connection, `n${seen.length}`);
      if (seen.length === 3) void client.close();
      else for (const c of server.accepted.splice(0)) c.destroy(); // drop the link: a new one comes
    }
    expect(seen).toHaveLength(3);
    expect(new Set(seen).size).toBe(3);
    expect(client.state).toBe('closed');
    await server.stop();
  });

  it('close() and the signal stop it: close event, waiters rejected with AbortError', async () => {
    const controller = new AbortController();
    const client = reconnecting(transport, freshAddress(), { backoff: fast, signal: controller.signal });
    const waiting = client.waitForConnection();
    const closed = next(client, 'close');
    controller.abort();
    await closed;
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    await expect(client.waitForConnection()).rejects.toMatchObject({ name: 'AbortError' });
    await client.close(); // twice is fine
    expect(client.state).toBe('closed');
  });

  it("an error shouldRetry refuses stops the client and is emitted as 'error'", async () => {
    const client = reconnecting(transport, freshAddress(), { backoff: fast, shouldRetry: () => false });
    const [error] = (await new Promise((resolve) => client.once('error', (e) => resolve([e])))) as [Error];
    expect(error).toMatchObject({ code: 'ENOENT' });
    await expect(client.waitForConnection()).rejects.toBe(error);
    await client.close();
  });

  it('bad arguments throw at once with typed errors', () => {
    expect(() => reconnecting(transport, 'unix:')).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS' }));
    expect(() => reconnecting(transport, freshAddress(), { backoff: { factor: 0 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => reconnecting(transport, freshAddress(), { dialTimeout: -5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => reconnecting({} as typeof transport, freshAddress())).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('an unref()ed client waiting to redial lets its process exit', async () => {
    const script = `
      import { reconnecting } from '@vmlink/transport';
      import { unix } from '@vmlink/transport-unix';
      const client = reconnecting(unix(), process.env.ADDR, { backoff: { initialDelay: 50, maxDelay: 50 } });
      client.on('retry', () => process.stdout.write('retry\\n'));
      client.unref();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ADDR: freshAddress() } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = (await new Promise((resolve) => child.once('close', (c, s) => resolve([c, s])))) as [number | null, string | null];
    clearTimeout(killer);
    expect(signal, 'the child had to be killed: the client kept the loop alive').toBeNull();
    expect(code).toBe(0);
    expect(out).toContain('retry');
  });
});
