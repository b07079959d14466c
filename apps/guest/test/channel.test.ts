import { describe, expect, it } from 'vitest';
import { Channel } from '../src/channel.js';

const gone = () => Object.assign(new Error('reader gone'), { code: 'ERR_VMLINK_CLIENT_GONE' });
const tick = () => new Promise((r) => setImmediate(r));

describe('Channel (pure push-to-pull bridge)', () => {
  it('hands chunks over in order and resolves send() only once the chunk is taken', async () => {
    const channel = new Channel(gone);
    let sent = false;
    const sending = channel.send(Buffer.from('a')).then(() => (sent = true));
    await tick();
    expect(sent).toBe(false); // nobody has read it yet: that is the backpressure
    const reader = channel[Symbol.asyncIterator]();
    expect(Buffer.from((await reader.next()).value as Uint8Array).toString()).toBe('a');
    await sending;
    expect(sent).toBe(true);
    const second = channel.send(Buffer.from('b'));
    expect(Buffer.from((await reader.next()).value as Uint8Array).toString()).toBe('b');
    await second;
    channel.end();
    expect((await reader.next()).done).toBe(true);
    await channel.done;
  });

  it('fails the producer when the reader stops early, and settles done', async () => {
    const channel = new Channel(gone);
    const first = channel.send(Buffer.from('x'));
    for await (const _chunk of channel) break; // reader stops after one chunk
    await first;
    await expect(channel.send(Buffer.from('y'))).rejects.toMatchObject({ code: 'ERR_VMLINK_CLIENT_GONE' });
    await channel.done;
  });

  it('a reader that stops while the producer is quiet is told to the producer at once', async () => {
    let reason: Error | undefined;
    const channel = new Channel(gone, (error) => (reason = error));
    const reader = channel[Symbol.asyncIterator]();
    const waiting = reader.next(); // nothing sent: the reader waits
    await tick();
    await reader.return!();
    expect(reason).toMatchObject({ code: 'ERR_VMLINK_CLIENT_GONE' });
    expect(await waiting).toEqual({ done: true, value: undefined });
    await expect(channel.send(Buffer.from('late'))).rejects.toMatchObject({ code: 'ERR_VMLINK_CLIENT_GONE' });
    await channel.done;
  });

  it('a reader that reads to the end is no cancel', async () => {
    let told = false;
    const channel = new Channel(gone, () => (told = true));
    channel.end();
    for await (const _chunk of channel) expect.unreachable();
    expect(told).toBe(false);
  });

  it('passes a producer failure to the reader', async () => {
    const channel = new Channel(gone);
    channel.fail(Object.assign(new Error('disk'), { code: 'EIO' }));
    await expect(channel[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'EIO' });
  });

  it('abort() releases a producer that no reader will ever serve', async () => {
    const channel = new Channel(gone);
    const stuck = channel.send(Buffer.from('never read'));
    channel.abort(Object.assign(new Error('closed'), { code: 'ERR_VMLINK_CLIENT_GONE' }));
    await expect(stuck).rejects.toMatchObject({ code: 'ERR_VMLINK_CLIENT_GONE' });
    await channel.done;
  });
});
