// src/fdstream on real fds: AF_UNIX socket pairs (stream and seqpacket), FIFOs (the
// hang-up/reconnect semantics of a virtio-serial port: EOF is "writer away", not the end)
// and a pty (EIO after the master closes).
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();
type FdStream = InstanceType<typeof binding.FdStream>;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A liveness limit for tests that move MiBs or start processes: 2 shared cores can be very busy. */
const LIVENESS_MS = 60_000;

/** Collects everything a stream reads until EOF. */
function collector(fd: number, options: ConstructorParameters<typeof binding.FdStream>[1] = {}) {
  const chunks: Buffer[] = [];
  let stream!: FdStream;
  const ended = new Promise<Buffer>((resolve, reject) => {
    stream = new binding.FdStream(fd, options, {
      onData: (chunk) => void chunks.push(chunk),
      onEnd: () => resolve(Buffer.concat(chunks)),
      onError: reject,
    });
  });
  return { stream, chunks, ended };
}

function writeAll(stream: FdStream, chunks: Uint8Array[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = stream.write(chunks, (err) => (err ? reject(err) : resolve()));
    if (done) resolve();
  });
}

const openFds = () => readdirSync('/proc/self/fd').length;

describe('FdStream over a stream socketpair', { timeout: LIVENESS_MS }, () => {
  it('moves 8 MiB one way byte-exact (writev of several chunks), then shutdown gives the reader EOF', async () => {
    const [a, b] = binding.socketpair('stream');
    const reader = collector(a);
    const writer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    reader.stream.readStart();
    const parts = [Buffer.alloc(3 * 1024 * 1024, 1), new Uint8Array(5), Buffer.from(Array.from({ length: 5 * 1024 * 1024 - 5 }, (_, i) => i & 0xff))];
    const whole = Buffer.concat(parts);
    await writeAll(writer, parts);
    writer.shutdown();
    const received = await reader.ended;
    expect(received.length).toBe(whole.length);
    expect(sha256(received)).toBe(sha256(whole));
    writer.close();
    reader.stream.close();
  });

  it('write() returns false when the kernel buffer is full, keeps the rest and calls back once written', async () => {
    const [a, b] = binding.socketpair('stream');
    const reader = collector(a);
    const writer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    const big = Buffer.alloc(16 * 1024 * 1024, 9);
    let calledBack = false;
    const finished = new Promise<Error | null>((resolve) => {
      const sync = writer.write(big, (err) => {
        calledBack = true;
        resolve(err);
      });
      expect(sync).toBe(false);
    });
    expect(writer.writeQueueSize).toBeGreaterThan(0);
    expect(writer.writeQueueSize).toBeLessThan(big.length);
    expect(() => writer.write(Buffer.from('x'), () => {})).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_WRITE_PENDING' }));
    await tick(20);
    expect(calledBack).toBe(false); // nobody reads yet: still pending
    reader.stream.readStart();
    expect(await finished).toBeNull();
    expect(writer.writeQueueSize).toBe(0);
    writer.shutdown();
    expect((await reader.ended).length).toBe(big.length);
    writer.close();
    reader.stream.close();
  });

  it('64 MiB written as batches of many chunks (one writev each) arrives byte-exact, no chunk above readSize', async () => {
    const [a, b] = binding.socketpair('stream');
    const readSize = 256 * 1024;
    const hash = createHash('sha256');
    let received = 0;
    let largest = 0;
    const ended = new Promise<void>((resolve, reject) => {
      const reader = new binding.FdStream(a, { readSize }, {
        onData: (chunk) => {
          received += chunk.length;
          largest = Math.max(largest, chunk.length);
          hash.update(chunk); // and drop it: nothing here keeps chunks alive
        },
        onEnd: () => {
          reader.close();
          resolve();
        },
        onError: reject,
      });
      reader.readStart();
    });
    const writer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    // 16 KiB chunks with a pattern that shifts per chunk, so a lost, doubled or reordered
    // chunk (or bytes overwritten by a later read) changes the hash.
    const expected = createHash('sha256');
    const patterns = Array.from({ length: 251 }, (_, i) => Buffer.alloc(16 * 1024, i));
    const chunk = (i: number) => patterns[i % 251] as Buffer;
    const total = 64 * 1024 * 1024;
    for (let sent = 0, i = 0; sent < total; ) {
      const batch: Buffer[] = [];
      for (let k = 0; k < 256 && sent < total; k++, i++, sent += 16 * 1024) batch.push(chunk(i));
      for (const part of batch) expected.update(part);
      await writeAll(writer, batch);
    }
    writer.shutdown();
    await ended;
    expect(received).toBe(total);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    expect(largest).toBeLessThanOrEqual(readSize);
    writer.close();
  });

  it('chunks handed to JS (whole, viewed or copied out of the shared read buffer) are never overwritten by later reads', async () => {
    // Two streams read into the one scratch buffer of this thread, in turns.
    const [a1, b1] = binding.socketpair('stream');
    const [a2, b2] = binding.socketpair('stream');
    const readSize = 64 * 1024;
    const kept: Buffer[][] = [[], []];
    const readers = [a1, a2].map(
      (fd, n) =>
        new binding.FdStream(fd, { readSize }, { onData: (chunk) => void kept[n]?.push(chunk), onError: () => {} }),
    );
    const writers = [b1, b2].map((fd) => new binding.FdStream(fd, {}, { onData: () => {}, onError: () => {} }));
    for (const reader of readers) reader.readStart();
    // Sizes that read as a copy (< half of readSize), a view (>= half) and a whole buffer.
    const sizes = [1, 1000, 20_000, 40_000, 65_536, 3, 50_000, 32_768, 7];
    const sent: Buffer[][] = [[], []];
    let fill = 1;
    for (const size of sizes) {
      for (const n of [0, 1]) {
        const bytes = Buffer.alloc(size, fill++ & 0xff);
        sent[n]?.push(bytes);
        await writeAll(writers[n] as FdStream, [bytes]);
        const want = sent[n]?.reduce((t, x) => t + x.length, 0) ?? 0;
        // Wait until it is read, so each write is (most likely) its own read.
        while ((kept[n]?.reduce((t, x) => t + x.length, 0) ?? 0) < want) await tick(1);
      }
    }
    for (const n of [0, 1]) {
      expect(Buffer.concat(kept[n] ?? []).equals(Buffer.concat(sent[n] ?? []))).toBe(true);
      expect(Math.max(...(kept[n] ?? []).map((c) => c.length))).toBeLessThanOrEqual(readSize);
    }
    for (const stream of [...readers, ...writers]) stream.close();
  });

  it('idle streams hold no read buffer of their own: 300 streams with readSize 1 MiB that each read a byte', async () => {
    const pairs = Array.from({ length: 300 }, () => binding.socketpair('stream'));
    let reads = 0;
    const before = process.memoryUsage().arrayBuffers;
    const readers = pairs.map(([a]) => {
      const reader = new binding.FdStream(a, { readSize: 1024 * 1024 }, { onData: () => void reads++, onError: () => {} });
      reader.readStart();
      return reader;
    });
    for (const [, b] of pairs) writeSync(b, 'x');
    while (reads < pairs.length) await tick(5);
    // A buffer per stream would be 300 MiB; the shared one is 1 MiB.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    for (const reader of readers) reader.close();
    for (const [, b] of pairs) closeSync(b);
  });

  it('readStop() stops reading: nothing is delivered while paused, all of it after readStart()', async () => {
    const [a, b] = binding.socketpair('stream');
    const reader = collector(a);
    const writer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    reader.stream.readStart();
    await writeAll(writer, [Buffer.from('first')]);
    while (reader.chunks.length === 0) await tick(5);
    reader.stream.readStop();
    await writeAll(writer, [Buffer.from('second')]);
    await tick(30);
    expect(Buffer.concat(reader.chunks).toString()).toBe('first');
    reader.stream.readStart();
    writer.shutdown();
    expect((await reader.ended).toString()).toBe('firstsecond');
    writer.close();
    reader.stream.close();
  });

  it('reports a write to a closed peer as an EPIPE error shaped like Node', async () => {
    const [a, b] = binding.socketpair('stream');
    closeSync(a);
    const writer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    expect(() => writer.write(Buffer.from('x'), () => {})).toThrow(
      expect.objectContaining({ code: 'EPIPE', syscall: 'write', errno: -osConstants.errno.EPIPE, message: 'write EPIPE' }),
    );
    writer.close();
  });

  it('close() is idempotent, closes the fd even with a write pending, and later calls fail with EBADF', async () => {
    const [a, b] = binding.socketpair('stream');
    const writer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    let calledBack = false;
    expect(writer.write(Buffer.alloc(8 * 1024 * 1024), () => (calledBack = true))).toBe(false);
    writer.close();
    writer.close();
    expect(writer.closed).toBe(true);
    expect(writer.fd).toBe(-1);
    expect(() => fstatSync(b)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => writer.write(Buffer.from('x'), () => {})).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'write' }));
    expect(() => writer.shutdown()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    await tick(20);
    expect(calledBack).toBe(false);
    closeSync(a);
  });

  it('leaves the fd count unchanged after 200 open/close cycles', () => {
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const [a, b] = binding.socketpair('stream');
      const x = new binding.FdStream(a, {}, { onData: () => {}, onError: () => {} });
      const y = new binding.VirtioSerialStream(b, {}, { onData: () => {}, onError: () => {}, onHangup: () => {} }); // + its epoll fd
      x.readStart();
      x.close();
      y.close();
    }
    expect(openFds()).toBe(before);
  });

  it('rejects bad constructor input with clear errors', () => {
    const callbacks = { onData: () => {}, onError: () => {} };
    // @ts-expect-error: wrong type on purpose
    expect(() => new binding.FdStream('3', {}, callbacks)).toThrow(/fd must be a number/);
    const [a, b] = binding.socketpair('stream');
    // @ts-expect-error: an option that moved to VirtioSerialStream, on purpose
    expect(() => new binding.FdStream(a, { hangupMode: 'notify' }, callbacks)).toThrow(/unknown option hangupMode.*VirtioSerialStream/);
    expect(() => fstatSync(a)).toThrow(expect.objectContaining({ code: 'EBADF' })); // ownership was taken: closed
    // @ts-expect-error: onHangup missing on purpose
    expect(() => new binding.VirtioSerialStream(b, {}, callbacks)).toThrow(/VirtioSerialStream: callbacks.onHangup must be a function/);
    expect(() => fstatSync(b)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('an unref()ed reading stream lets the process exit', async () => {
    const script = `
      const b = require(${JSON.stringify(require.resolve('../index.cjs'))}).loadBinding();
      const [x] = b.socketpair('stream');
      const s = new b.FdStream(x, {}, { onData() {}, onError() {} });
      s.readStart();
      s.unref();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});

describe('FdStream in message mode (seqpacket socketpair)', { timeout: LIVENESS_MS }, () => {
  it('keeps message boundaries both ways and sends each chunk of a write as one message', async () => {
    const [a, b] = binding.socketpair('seqpacket');
    const messages: Buffer[] = [];
    const reader = new binding.FdStream(a, { messages: true }, { onData: (m) => void messages.push(m), onError: () => {} });
    const writer = new binding.FdStream(b, { messages: true }, { onData: () => {}, onError: () => {} });
    reader.readStart();
    await writeAll(writer, [Buffer.from('one'), Buffer.from('two'), Buffer.alloc(1000, 3)]);
    while (messages.length < 3) await tick(5);
    expect(messages.map((m) => m.length)).toEqual([3, 3, 1000]);
    expect(messages[0]?.toString()).toBe('one');
    reader.close();
    writer.close();
  });

  it('reports a message longer than readSize with its real length (MSG_TRUNC)', async () => {
    const [a, b] = binding.socketpair('seqpacket');
    const seen: Array<[number, number | undefined]> = [];
    const reader = new binding.FdStream(a, { messages: true, readSize: 16 }, {
      onData: (m, truncatedFrom) => void seen.push([m.length, truncatedFrom]),
      onError: () => {},
    });
    const writer = new binding.FdStream(b, { messages: true }, { onData: () => {}, onError: () => {} });
    reader.readStart();
    await writeAll(writer, [Buffer.alloc(100, 1), Buffer.alloc(16, 2)]);
    while (seen.length < 2) await tick(5);
    expect(seen).toEqual([[16, 100], [16, undefined]]);
    reader.close();
    writer.close();
  });
});

describe('FdStream and VirtioSerialStream on a FIFO (it behaves like a virtio-serial port: for VirtioSerialStream EOF is not the end)', { timeout: LIVENESS_MS }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-fdstream-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function fifo(name: string): string {
    const path = join(dir, name);
    execFileSync('mkfifo', [path]);
    return path;
  }

  it('FdStream: the writer closing ends the stream', async () => {
    const path = fifo('end');
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const reader = collector(readFd);
    reader.stream.readStart();
    const writeFd = openSync(path, constants.O_WRONLY);
    writeSync(writeFd, 'hello');
    closeSync(writeFd);
    expect((await reader.ended).toString()).toBe('hello');
    reader.stream.close();
  });

  it('VirtioSerialStream: hang-up reported once without spinning, then reconnect and more data', async () => {
    const path = fifo('notify');
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const events: string[] = [];
    const stream = new binding.VirtioSerialStream(readFd, {}, {
      onData: (chunk) => void events.push(`data:${chunk.toString()}`),
      onError: (err) => void events.push(`error:${err.code}`),
      onHangup: () => void events.push('hangup'),
      onReconnect: () => void events.push('reconnect'),
    });
    stream.readStart();
    const first = openSync(path, constants.O_WRONLY);
    writeSync(first, 'one');
    while (events.length < 1) await tick(5);
    closeSync(first);
    while (!events.includes('hangup')) await tick(5);
    expect(stream.hungUp).toBe(true);
    const wakeupsAtHangup = stream.wakeups;
    // The FIFO now polls IN|HUP for as long as nobody writes: a level-triggered poll
    // would wake the loop continuously here. Edge-triggered: no further wake-ups.
    await tick(200);
    expect(stream.wakeups - wakeupsAtHangup).toBeLessThanOrEqual(1);
    const second = openSync(path, constants.O_WRONLY);
    writeSync(second, 'two');
    while (!events.includes('data:two')) await tick(5);
    expect(events).toEqual(['data:one', 'hangup', 'reconnect', 'data:two']);
    expect(stream.hungUp).toBe(false);
    closeSync(second);
    while (events.length < 5) await tick(5);
    expect(events[4]).toBe('hangup');
    stream.close();
  });

  it('VirtioSerialStream: an EOF read behind bytes is not reported once delivering them brought the peer back', async () => {
    const path = fifo('stale-eof');
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const events: string[] = [];
    let second: number | undefined;
    const stream = new binding.VirtioSerialStream(readFd, {}, {
      onData: (chunk) => {
        events.push(`data:${chunk.toString()}`);
        if (second === undefined) {
          // The peer comes back while its predecessor's bytes are delivered: the EOF the
          // stream read behind them no longer holds.
          second = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
          writeSync(second, 'b');
        }
      },
      onError: (err) => void events.push(`error:${err.code}`),
      onHangup: () => void events.push('hangup'),
      onReconnect: () => void events.push('reconnect'),
    });
    stream.readStart();
    // All before the loop runs: one wake-up finds 'a' and then EOF.
    const first = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(first, 'a');
    closeSync(first);
    while (!events.includes('data:b')) await tick(5);
    await tick(50);
    expect(events).toEqual(['data:a', 'data:b']);
    expect(stream.hungUp).toBe(false);
    closeSync(second as number);
    while (!events.includes('hangup')) await tick(5); // the real departure is still reported
    stream.close();
  });

  it('VirtioSerialStream: data left unread while paused is delivered on resume (edge re-armed)', async () => {
    const path = fifo('paused');
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const chunks: string[] = [];
    const stream = new binding.VirtioSerialStream(readFd, { readSize: 4 }, {
      onData: (chunk) => {
        chunks.push(chunk.toString());
        stream.readStop(); // take one chunk per readStart, like a Duplex under pressure
      },
      onError: () => {},
      onHangup: () => {},
    });
    const writeFd = openSync(path, constants.O_WRONLY);
    writeSync(writeFd, 'aaaabbbbcccc');
    stream.readStart();
    while (chunks.length < 1) await tick(5);
    await tick(30);
    expect(chunks).toEqual(['aaaa']);
    stream.readStart();
    while (chunks.length < 2) await tick(5);
    stream.readStart();
    while (chunks.length < 3) await tick(5);
    expect(chunks.join('')).toBe('aaaabbbbcccc');
    closeSync(writeFd);
    stream.close();
  });

  it('VirtioSerialStream on a pty: the master closing is a hang-up (EIO), reported once', async () => {
    // python3 holds the master; we open the slave by name, like a guest opens its port.
    const child = spawn('python3', ['-c', 'import os,sys; m,s=os.openpty(); print(os.ttyname(s), flush=True); sys.stdin.read()'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const slaveFd = openSync(line.toString().trim(), constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    const events: string[] = [];
    const stream = new binding.VirtioSerialStream(slaveFd, {}, {
      onData: () => void events.push('data'),
      onError: (err) => void events.push(`error:${err.code}`),
      onHangup: () => void events.push('hangup'),
    });
    stream.readStart();
    child.stdin.end(); // python exits: the master closes
    await once(child, 'exit');
    while (!events.includes('hangup')) await tick(5);
    const wakeups = stream.wakeups;
    await tick(200);
    expect(stream.wakeups - wakeups).toBeLessThanOrEqual(1);
    expect(events).toEqual(['hangup']);
    stream.close();
  });
});
