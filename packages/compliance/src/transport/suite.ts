import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import type { Connection, Listener, Transport } from '@vmlink/transport';
import { assertAbortError, assertCode, assertSystemError } from './assertions.js';
import { patternBytes, sha256 } from './bytes.js';
import { runChild, type ChildMode } from './child.js';
import type { PeerHandle } from './peer.js';
import { toRunner, type Runner, type TestApi } from './runner.js';
import type { TransportTestSetup } from './setup.js';
import { closed, destroyAndWait, drained, readExactly, readLine, writeAll } from './streams.js';

// Not node:timers/promises: the tsup build drops `node:` and a bare 'timers/promises'
// does not resolve under vitest's module runner.
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const KiB = 1024;
const MiB = 1024 * KiB;

/** Shared state of one suite run: the peer, and every Connection a test opened. */
class Context {
  peer: PeerHandle | undefined;
  private readonly open = new Set<Duplex>();

  constructor(readonly setup: TransportTestSetup) {}

  get transport(): Transport {
    return this.setup.transport;
  }

  get peerAddress(): string {
    if (!this.peer) throw new Error('the compliance peer did not start (see the before hook)');
    return this.peer.address;
  }

  /** Remember a Connection so the suite's `after` destroys it even if a test failed. */
  track<C extends Duplex>(connection: C): C {
    this.open.add(connection);
    connection.once('close', () => this.open.delete(connection));
    return connection;
  }

  /** Dial the peer and send it a command line. */
  async dialPeer(command: string): Promise<Connection> {
    const connection = this.track(await this.transport.dial(this.peerAddress));
    connection.write(`${command}\n`);
    return connection;
  }

  listenAddress(): string {
    if (!this.setup.listenAddress) throw new Error('capabilities.listen is true but the setup has no listenAddress()');
    return this.setup.listenAddress();
  }

  dialAddressOf(listener: Listener): string {
    return this.setup.dialAddressOf?.(listener) ?? listener.address();
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.open].map((c) => destroyAndWait(c)));
  }
}

/** Echo `data` through the peer and check every byte. */
async function echoRoundTrip(ctx: Context, data: Buffer): Promise<void> {
  const connection = await ctx.dialPeer('echo');
  const back = readExactly(connection, data.length);
  await writeAll(connection, data);
  const received = await back;
  assert.ok(received.equals(data), `echo of ${data.length} bytes differs (sha256 ${sha256(received)} != ${sha256(data)})`);
  await destroyAndWait(connection);
}

function describeAddresses(t: Runner, ctx: Context): void {
  t.describe('addresses', () => {
    t.it('declares a name, lower-case schemes and all four capabilities', async () => {
      const { transport } = ctx;
      assert.equal(typeof transport.name, 'string');
      assert.ok(transport.name.length > 0, 'empty name');
      assert.ok(transport.schemes.length > 0, 'no schemes');
      for (const scheme of transport.schemes) assert.match(scheme, /^[a-z][a-z0-9+.-]*$/);
      for (const key of ['multiConnection', 'halfClose', 'messageBoundaries', 'listen'] as const) {
        assert.equal(typeof transport.capabilities[key], 'boolean', `capabilities.${key}`);
      }
    });

    t.it('parse() is stable: parsing a canonical uri gives the same uri', async () => {
      const first = ctx.transport.parse(ctx.peerAddress);
      assert.ok(ctx.transport.schemes.includes(first.scheme), `scheme '${first.scheme}' is not one of the transport's`);
      assert.equal(ctx.transport.parse(first.uri).uri, first.uri);
    });

    t.it('malformed and foreign addresses fail with ERR_VMLINK_INVALID_ADDRESS naming the input', async () => {
      const [scheme] = ctx.transport.schemes;
      const inputs = ['', 'no scheme here', 'zz-no-such-scheme://x', `${scheme}:`];
      for (const input of inputs) {
        assert.throws(
          () => ctx.transport.parse(input),
          (e: unknown) => assertCode(e, 'ERR_VMLINK_INVALID_ADDRESS', `parse('${input}')`) && (e as Error).message.includes(`'${input}'`),
        );
        let dialing: Promise<Connection>;
        try {
          dialing = ctx.transport.dial(input);
        } catch (error) {
          assert.fail(`dial('${input}') threw synchronously instead of rejecting: ${String(error)}`);
        }
        await assert.rejects(dialing, (e: unknown) => assertCode(e, 'ERR_VMLINK_INVALID_ADDRESS', `dial('${input}')`));
      }
      assert.throws(() => ctx.transport.parse(42 as unknown as string), (e: unknown) => assertCode(e, 'ERR_VMLINK_INVALID_ADDRESS', 'parse(42)'));
    });
  });
}

function describeListener(t: Runner, ctx: Context): void {
  t.describe('listener', () => {
    if (!ctx.transport.capabilities.listen) {
      t.skip('listen/close lifecycle', 'capabilities.listen is false');
      return;
    }

    t.it('listen() gives a Listener; close() twice is safe and emits close once', async () => {
      const listener = await ctx.transport.listen(ctx.listenAddress());
      let closeEvents = 0;
      listener.on('close', () => (closeEvents += 1));
      assert.equal(listener.transport, ctx.transport);
      assert.equal(listener.closed, false);
      assert.equal(ctx.transport.parse(listener.address()).uri, listener.address(), 'address() is not canonical');
      await listener.close();
      await listener.close();
      assert.equal(listener.closed, true);
      assert.equal(closeEvents, 1);
    });

    t.it('after close() a dial to the old address fails with a system error', async () => {
      const listener = await ctx.transport.listen(ctx.listenAddress());
      const target = ctx.dialAddressOf(listener);
      await listener.close();
      await assert.rejects(ctx.transport.dial(target), (e: unknown) => assertSystemError(e, 'dial after close'));
    });

    t.it("accepted Connections arrive as 'connection' events, with their ends named", async () => {
      await using listener = await ctx.transport.listen(ctx.listenAddress());
      const accepted = once(listener, 'connection') as Promise<[Connection]>;
      const client = ctx.track(await ctx.transport.dial(ctx.dialAddressOf(listener)));
      const [server] = await accepted;
      ctx.track(server);
      assert.equal(server.transport, ctx.transport);
      assert.equal(server.localAddress, listener.address());
      assert.equal(typeof server.remoteAddress, 'string');
      client.write('ping');
      assert.equal((await readExactly(server, 4)).toString(), 'ping');
      server.write('pong');
      assert.equal((await readExactly(client, 4)).toString(), 'pong');
      await destroyAndWait(client);
      await destroyAndWait(server);
    });

    t.it('async iteration yields Connections and finishes when the listener closes', async () => {
      const listener = await ctx.transport.listen(ctx.listenAddress());
      const iterator = listener[Symbol.asyncIterator]();
      const client = ctx.track(await ctx.transport.dial(ctx.dialAddressOf(listener)));
      const first = await iterator.next();
      assert.equal(first.done, false);
      const server = ctx.track(first.value as Connection);
      assert.equal(server.transport, ctx.transport);
      await destroyAndWait(client);
      await destroyAndWait(server);
      await listener.close();
      assert.equal((await iterator.next()).done, true);
    });

    t.it('Symbol.asyncDispose closes the listener', async () => {
      const listener = await ctx.transport.listen(ctx.listenAddress());
      await listener[Symbol.asyncDispose]();
      assert.equal(listener.closed, true);
    });

    t.it('listen() with an aborted signal rejects with AbortError; a later abort closes the listener', async () => {
      await assert.rejects(
        ctx.transport.listen(ctx.listenAddress(), { signal: AbortSignal.abort() }),
        (e: unknown) => assertAbortError(e, 'listen(pre-aborted)'),
      );
      const controller = new AbortController();
      const listener = await ctx.transport.listen(ctx.listenAddress(), { signal: controller.signal });
      const closing = once(listener, 'close');
      controller.abort();
      await closing;
      assert.equal(listener.closed, true);
    });
  });
}

function describeDial(t: Runner, ctx: Context): void {
  t.describe('dial', () => {
    t.it('dial() gives a Duplex Connection that names its transport and both ends', async () => {
      const connection = await ctx.dialPeer('echo');
      assert.ok(connection instanceof Duplex, 'a Connection must be a stream.Duplex');
      assert.equal(connection.transport, ctx.transport);
      assert.equal(ctx.transport.parse(connection.remoteAddress).uri, connection.remoteAddress);
      assert.equal(typeof connection.localAddress, 'string');
      assert.ok(
        ctx.transport.schemes.some((s) => connection.localAddress.startsWith(`${s}:`)),
        `localAddress '${connection.localAddress}' is not a URI of this transport`,
      );
      assert.equal(typeof connection.ref, 'function');
      assert.equal(typeof connection.unref, 'function');
      connection.write('hello');
      assert.equal((await readExactly(connection, 5)).toString(), 'hello');
      await destroyAndWait(connection);
    });

    t.it('an unreachable address fails with a system error (code, syscall)', async () => {
      await assert.rejects(ctx.transport.dial(ctx.setup.unreachableAddress()), (e: unknown) => assertSystemError(e, 'unreachable'));
    });

    t.it('bad dial options fail with typed errors', async () => {
      const bad: Array<[object, string]> = [
        [{ timeout: -1 }, 'ERR_OUT_OF_RANGE'],
        [{ timeout: 1.5 }, 'ERR_OUT_OF_RANGE'],
        [{ timeout: '10' }, 'ERR_INVALID_ARG_TYPE'],
        [{ signal: {} }, 'ERR_INVALID_ARG_TYPE'],
      ];
      for (const [options, code] of bad) {
        await assert.rejects(ctx.transport.dial(ctx.peerAddress, options), (e: unknown) => assertCode(e, code, JSON.stringify(options)));
      }
    });

    t.it('an already aborted signal rejects with AbortError', async () => {
      await assert.rejects(ctx.transport.dial(ctx.peerAddress, { signal: AbortSignal.abort() }), (e: unknown) => assertAbortError(e, 'pre-aborted'));
    });

    t.it('aborting while the dial is in progress rejects with AbortError', async () => {
      const controller = new AbortController();
      const dialing = ctx.transport.dial(ctx.peerAddress, { signal: controller.signal });
      controller.abort();
      await assert.rejects(dialing, (e: unknown) => assertAbortError(e, 'mid-dial abort'));
    });

    t.it('aborting after the dial completed leaves the Connection working', async () => {
      const controller = new AbortController();
      const connection = ctx.track(await ctx.transport.dial(ctx.peerAddress, { signal: controller.signal }));
      controller.abort();
      connection.write('echo\nstill here');
      assert.equal((await readExactly(connection, 10)).toString(), 'still here');
      await destroyAndWait(connection);
    });

    t.it('a timeout that did not expire does not touch the Connection later', async () => {
      // Not a speed check: the dial must succeed well within its timeout, even in a loaded
      // guest. Waiting past the timer's due time is enough: timers fire in due order.
      // A dial that a loaded guest answers too late to beat it is not what this checks:
      // once more with twice the time (ETIMEDOUT only; any other failure is one).
      let timeout = unexpiredDialTimeout(ctx.setup);
      let connection: Connection;
      for (let attempt = 1; ; attempt += 1) {
        try {
          connection = ctx.track(await ctx.transport.dial(ctx.peerAddress, { timeout }));
          break;
        } catch (error) {
          if ((error as { code?: unknown }).code !== 'ETIMEDOUT' || attempt === 2) throw error;
          timeout *= 2;
        }
      }
      await delay(timeout + 50);
      assert.equal(connection.destroyed, false, 'the dial timer destroyed a connected Connection');
      connection.write('echo\nalive');
      assert.equal((await readExactly(connection, 5)).toString(), 'alive');
      await destroyAndWait(connection);
    });

    if (ctx.setup.stalledAddress) {
      const stalledAddress = ctx.setup.stalledAddress.bind(ctx.setup);
      t.it('a dial that cannot complete fails with ETIMEDOUT after its timeout', async () => {
        const stalled = await stalledAddress();
        try {
          await assert.rejects(ctx.transport.dial(stalled.address, { timeout: 200 }), (e: unknown) => {
            assertSystemError(e, 'timeout');
            return assertCode(e, 'ETIMEDOUT', 'timeout');
          });
        } finally {
          await stalled.close();
        }
      });
    } else {
      t.skip('a dial that cannot complete fails with ETIMEDOUT', 'this channel has no address where a dial stalls (setup.stalledAddress)');
    }
  });
}

function describeData(t: Runner, ctx: Context): void {
  t.describe('data', () => {
    for (const size of [1, 64 * KiB, 16 * MiB]) {
      t.it(`echo: ${size} bytes each way arrive byte-exact`, () => echoRoundTrip(ctx, patternBytes(size, size)));
    }

    t.it('peer -> dialer: 16 MiB arrive byte-exact', async () => {
      const size = 16 * MiB;
      const connection = await ctx.dialPeer(`send ${size} 7`);
      const received = await readExactly(connection, size);
      assert.equal(sha256(received), sha256(patternBytes(size, 7)));
      await destroyAndWait(connection);
    });

    t.it('dialer -> peer: 16 MiB arrive byte-exact', async () => {
      const data = patternBytes(16 * MiB, 11);
      const connection = await ctx.dialPeer(`sink ${data.length}`);
      await writeAll(connection, data);
      assert.equal(await readLine(connection), sha256(data));
      await destroyAndWait(connection);
    });

    t.it('1000 small writes arrive complete and in order, each write called back', async () => {
      const writes = Array.from({ length: 1000 }, (_, i) => patternBytes(1 + ((i * 7) % 61), i + 1));
      const all = Buffer.concat(writes);
      const connection = await ctx.dialPeer('echo');
      const back = readExactly(connection, all.length);
      let calledBack = 0;
      for (const chunk of writes) {
        if (!connection.write(chunk, () => (calledBack += 1))) await drained(connection);
      }
      assert.ok((await back).equals(all), 'echoed bytes differ');
      assert.equal(calledBack, writes.length);
      await destroyAndWait(connection);
    });

    t.it("backpressure: write() returns false while the peer does not read, then 'drain' comes", async () => {
      const total = 32 * MiB;
      const chunk = 4 * KiB; // smaller than the default highWaterMark: false means bytes really queued
      const data = patternBytes(total, 13);
      const connection = await ctx.dialPeer(`hold 300 ${total}`);
      let offset = 0;
      let sawFalse = false;
      // A synchronous loop: nothing is read on the other side while it runs in this process,
      // and a remote peer holds for 300 ms; either way the channel's buffers fill up.
      while (offset < total && !sawFalse) {
        sawFalse = !connection.write(data.subarray(offset, offset + chunk));
        offset += chunk;
      }
      assert.ok(sawFalse, `write() never returned false after ${total} bytes to a peer that was not reading`);
      assert.ok(connection.writableLength > 0, "write() returned false with nothing queued");
      await drained(connection);
      await writeAll(connection, data.subarray(offset), chunk);
      assert.equal(await readLine(connection), sha256(data));
      await destroyAndWait(connection);
    });

    if (ctx.transport.capabilities.halfClose) {
      t.it('half-close: after end() the dialer still receives the reply and then end', async () => {
        const connection = await ctx.dialPeer('halfclose');
        connection.write(Buffer.alloc(1000, 1));
        connection.end(Buffer.alloc(24, 2));
        const ended = once(connection, 'end');
        assert.equal(await readLine(connection), 'got 1024');
        connection.resume();
        await ended;
        await closed(connection);
      });

      t.it("half-close: the peer's end() arrives as 'end' after all its bytes", async () => {
        const connection = await ctx.dialPeer(`send ${64 * KiB} 3`);
        const received = await readExactly(connection, 64 * KiB);
        const ended = once(connection, 'end');
        connection.resume();
        await ended;
        assert.ok(received.equals(patternBytes(64 * KiB, 3)));
        connection.end();
        await closed(connection);
      });
    } else {
      t.skip('half-close', 'capabilities.halfClose is false');
    }
  });
}

function describeDestroy(t: Runner, ctx: Context): void {
  t.describe('destroy', () => {
    t.it("destroy() emits 'close' once; later writes fail with ERR_STREAM_DESTROYED", async () => {
      const connection = await ctx.dialPeer('echo');
      let closes = 0;
      connection.on('close', () => (closes += 1));
      await destroyAndWait(connection);
      connection.destroy();
      assert.equal(connection.destroyed, true);
      const writeError = await new Promise<Error | null | undefined>((resolve) => {
        connection.on('error', () => {});
        connection.write('late', resolve);
      });
      assertCode(writeError, 'ERR_STREAM_DESTROYED', 'write after destroy');
      await delay(10);
      assert.equal(closes, 1);
    });

    t.it("destroy(error) emits that error, then 'close'", async () => {
      const connection = await ctx.dialPeer('echo');
      const failure = new Error('test failure');
      const errored = once(connection, 'error');
      connection.destroy(failure);
      const [error] = (await errored) as [Error];
      assert.equal(error, failure);
      await closed(connection);
    });

    t.it('destroy() with megabytes still queued closes cleanly', async () => {
      const connection = await ctx.dialPeer(`hold 1000 ${64 * MiB}`);
      const data = patternBytes(4 * MiB, 5);
      connection.write(data);
      connection.write(data);
      await destroyAndWait(connection);
      assert.equal(connection.destroyed, true);
    });
  });
}

function describeParallel(t: Runner, ctx: Context): void {
  t.describe('parallel', () => {
    if (!ctx.transport.capabilities.multiConnection) {
      t.skip('32 parallel connections', 'capabilities.multiConnection is false');
      return;
    }
    t.it('32 parallel connections each echo their own 64 KiB', async () => {
      await Promise.all(Array.from({ length: 32 }, (_, i) => echoRoundTrip(ctx, patternBytes(64 * KiB, 100 + i))));
    });
  });
}

/**
 * The dial timeout of the "did not expire" check: a twentieth of the per-test timeout,
 * between 1 and 3 s (3 s with the default 60 s), so a dial never has to beat it.
 */
function unexpiredDialTimeout(setup: Pick<TransportTestSetup, 'timeoutMs'>): number {
  return Math.min(3_000, Math.max(1_000, Math.floor((setup.timeoutMs ?? 60_000) / 20)));
}

function describeHandles(t: Runner, ctx: Context): void {
  t.describe('handles', () => {
    const deadline = Math.max(10_000, Math.floor((ctx.setup.timeoutMs ?? 60_000) / 2));
    const expectExit = async (mode: ChildMode, address: string): Promise<void> => {
      const result = await runChild(ctx.setup.child, mode, address, deadline);
      const output = `\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
      assert.equal(result.killed, false, `the child (${mode}) did not exit on its own within ${deadline} ms: a handle leaked${output}`);
      assert.equal(result.code, 0, `the child (${mode}) failed${output}`);
      assert.match(result.stdout, /child-done/, `the child (${mode}) did not finish its job${output}`);
    };

    t.it('a child process that dials, echoes and ends exits on its own', () => expectExit('dial-echo-close', ctx.peerAddress));
    t.it('a child process holding an unref()ed Connection exits on its own', () => expectExit('dial-unref', ctx.peerAddress));
    if (ctx.transport.capabilities.listen) {
      t.it('a child process that listens and closes exits on its own', () => expectExit('listen-close', ctx.listenAddress()));
      t.it('a child process holding an unref()ed Listener exits on its own', () => expectExit('listen-unref', ctx.listenAddress()));
    } else {
      t.skip('a child process that listens and closes exits on its own', 'capabilities.listen is false');
    }
  });
}

/**
 * Register the transport compliance suite with a test framework:
 *
 *   import * as vitest from 'vitest';            // or: import * as nodeTest from 'node:test';
 *   describeTransportCompliance(setup, vitest);  //     describeTransportCompliance(setup, nodeTest);
 */
export function describeTransportCompliance(setup: TransportTestSetup, api: TestApi): void {
  const t = toRunner(api, setup.timeoutMs ?? 60_000);
  const ctx = new Context(setup);
  t.describe(`transport compliance: ${setup.transport.name}`, () => {
    t.before(async () => {
      ctx.peer = await setup.startPeer();
    });
    t.after(async () => {
      await ctx.cleanup();
      await ctx.peer?.close();
      await setup.teardown?.();
    });
    describeAddresses(t, ctx);
    describeListener(t, ctx);
    describeDial(t, ctx);
    describeData(t, ctx);
    describeDestroy(t, ctx);
    describeParallel(t, ctx);
    describeHandles(t, ctx);
  });
}
