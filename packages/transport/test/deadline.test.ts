import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { dialWithDeadline, toConnection, type Connection, type Transport } from '@vmlink/transport';

/** An in-memory stand-in Connection: only for the pure deadline logic. */
function fakeConnection(): Connection {
  const stream = new PassThrough();
  return toConnection(stream, { transport: {} as Transport, localAddress: 'fake:a', remoteAddress: 'fake:b' });
}

describe('dialWithDeadline (pure logic, fake connections)', () => {
  it('resolves with what start() gives', async () => {
    const connection = fakeConnection();
    await expect(dialWithDeadline('fake:b', {}, async () => connection)).resolves.toBe(connection);
  });

  it('a deadline rejects with ETIMEDOUT shaped like a system error, and aborts start()', async () => {
    let innerSignal: AbortSignal | undefined;
    const dialing = dialWithDeadline('fake:b', { timeout: 20 }, (signal) => {
      innerSignal = signal;
      return new Promise<Connection>(() => {});
    });
    await expect(dialing).rejects.toMatchObject({ code: 'ETIMEDOUT', errno: -110, syscall: 'connect', address: 'fake:b' });
    expect(innerSignal?.aborted).toBe(true);
  });

  it('a Connection that arrives after the deadline is destroyed, not leaked', async () => {
    const late = fakeConnection();
    let deliver: (c: Connection) => void = () => {};
    const dialing = dialWithDeadline('fake:b', { timeout: 10 }, () => new Promise<Connection>((resolve) => (deliver = resolve)));
    await expect(dialing).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    deliver(late);
    await new Promise((resolve) => setImmediate(resolve));
    expect(late.destroyed).toBe(true);
  });

  it('the caller aborting rejects with AbortError carrying the reason', async () => {
    const controller = new AbortController();
    const dialing = dialWithDeadline('fake:b', { signal: controller.signal }, () => new Promise<Connection>(() => {}));
    controller.abort(new Error('changed my mind'));
    await expect(dialing).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: new Error('changed my mind') });
  });

  it('bad options and a throwing start() reject, never throw', async () => {
    await expect(dialWithDeadline('fake:b', { timeout: 0 }, async () => fakeConnection())).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(dialWithDeadline('fake:b', 'soon' as unknown as object, async () => fakeConnection())).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(
      dialWithDeadline('fake:b', {}, () => {
        throw new Error('sync failure');
      }),
    ).rejects.toThrow('sync failure');
  });
});
