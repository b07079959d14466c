// VirtioSerialStream while the peer is away: a write the device refuses (EAGAIN + HUP)
// must not busy-loop, dropPendingWrite() hands its callback an error, and a hang-up is
// reported even while reading is paused. Real fds: a pty master whose slave is closed
// (HUP, writes EAGAIN once the tty buffer is full, reopening the slave is the peer coming
// back: the same states as a virtio-serial port whose host is away), a stream socket whose
// peer shut down its writing side (RDHUP) and FIFOs.
import { execFileSync, execFile } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });
const binding = native.loadBinding();

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A liveness limit for tests that move MiBs or start processes: 2 shared cores can be very busy. */
const LIVENESS_MS = 60_000;
/** A hung-up stream may wake a few times (the ADD, one re-arm); a busy loop wakes thousands. */
const FEW_WAKEUPS = 10;

/**
 * Runs the pty scenario in a child node: python makes the pty (raw, slave closed) and
 * execs node with the master as an inherited fd, since node itself cannot unlock a pty.
 */
const ptyChild = String.raw`
const b = require(process.argv[1]).loadBinding();
const master = Number(process.argv[2]);
const slavePath = process.argv[3];
const events = [];
const log = (e) => events.push(e);
const stream = new b.VirtioSerialStream(master, {}, {
  onData: () => log('data'), onError: (e) => log('error:' + e.code),
  onHangup: () => log('hangup'), onReconnect: () => log('reconnect'),
});
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const out = {};
  // Nobody holds the slave: the tty buffer fills, then EAGAIN, with HUP set all along.
  out.firstWriteSync = stream.write(Buffer.alloc(1 << 20, 0x61), (err) => log('write1:' + (err ? err.code : 'ok')));
  out.queuedBefore = stream.writeQueueSize;
  const base = stream.wakeups;
  await wait(300);
  out.wakeupsWhileAway = stream.wakeups - base;
  out.hungUp = stream.hungUp;
  const unsent = stream.writeQueueSize;
  out.dropped = stream.dropPendingWrite();
  out.queuedAfterDrop = stream.writeQueueSize;
  out.droppedAgain = stream.dropPendingWrite();
  // The port refuses writes until the peer is back: the last of these waits for it.
  let accepted = (1 << 20) - unsent;
  let pendingWrite = false;
  while (!pendingWrite) {
    const chunk = Buffer.alloc(4096, 0x62);
    pendingWrite = !stream.write(chunk, (err) => log('write2:' + (err ? err.code : 'ok')));
    accepted += chunk.length; // all of it, now or once the peer is back
  }
  out.hungUpBeforeReturn = stream.hungUp;
  let slaveBytes = 0;
  const fs = require('node:fs');
  const slave = new b.FdStream(fs.openSync(slavePath, fs.constants.O_RDWR | fs.constants.O_NOCTTY), {}, {
    onData: (chunk) => { slaveBytes += chunk.length; }, onError: (e) => log('slave:' + e.code),
  });
  slave.readStart();
  while (!events.includes('write2:ok') || slaveBytes < accepted) await wait(5);
  out.slaveBytesMatch = slaveBytes === accepted;
  out.hungUpAtEnd = stream.hungUp;
  out.events = events;
  slave.close();
  stream.close();
  console.log(JSON.stringify(out));
})();
`;

const ptyParent = String.raw`
import os, sys, tty
m, s = os.openpty()
tty.setraw(s)
name = os.ttyname(s)
os.close(s)
os.set_inheritable(m, True)
os.execv(sys.argv[1], [sys.argv[1], '-e', sys.argv[2], sys.argv[3], str(m), name])
`;

describe('VirtioSerialStream: a write the hung-up peer refuses', { timeout: LIVENESS_MS }, () => {
  it('on a pty master with the slave closed: no busy loop, dropPendingWrite() calls back, the peer coming back completes the next write', async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile('python3', ['-c', ptyParent, process.execPath, ptyChild, require.resolve('../index.cjs')], { timeout: 60_000 }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      );
    });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out.firstWriteSync).toBe(false);
    expect(out.queuedBefore).toBeGreaterThan(0);
    expect(out.wakeupsWhileAway).toBeLessThanOrEqual(FEW_WAKEUPS);
    expect(out.hungUp).toBe(true); // reported while not reading
    expect(out.dropped).toBe(true);
    expect(out.queuedAfterDrop).toBe(0);
    expect(out.droppedAgain).toBe(false);
    expect(out.hungUpBeforeReturn).toBe(true);
    expect(out.slaveBytesMatch).toBe(true);
    expect(out.hungUpAtEnd).toBe(false);
    expect(out.events).toEqual(['hangup', 'write1:ECONNRESET', 'reconnect', 'write2:ok']);
  });

  it('on a stream socket whose peer shut down writing (RDHUP): no busy loop; dropPendingWrite(error) passes the given error', async () => {
    const [a, b] = binding.socketpair('stream');
    const events: string[] = [];
    const stream = new binding.VirtioSerialStream(a, {}, {
      onData: () => void events.push('data'),
      onError: (err) => void events.push(`error:${err.code}`),
      onHangup: () => void events.push('hangup'),
    });
    const peer = new binding.FdStream(b, {}, { onData: () => {}, onError: () => {} });
    peer.shutdown(); // RDHUP for `stream`; the peer never reads, so writes hit EAGAIN
    let result: Error | null | undefined;
    expect(stream.write(Buffer.alloc(16 * 1024 * 1024), (err) => (result = err))).toBe(false);
    const base = stream.wakeups;
    await tick(300);
    expect(stream.wakeups - base).toBeLessThanOrEqual(FEW_WAKEUPS);
    expect(events).toEqual(['hangup']);
    expect(result).toBeUndefined();
    const mine = Object.assign(new Error('the host went away'), { code: 'ERR_VMLINK_HANGUP' });
    expect(stream.dropPendingWrite(mine)).toBe(true);
    expect(result).toBe(mine);
    expect(stream.writeQueueSize).toBe(0);
    stream.close();
    peer.close();
  });

  it('dropPendingWrite() with nothing pending returns false; a bad error argument is a TypeError', () => {
    const [a, b] = binding.socketpair('stream');
    const stream = new binding.VirtioSerialStream(a, {}, { onData: () => {}, onError: () => {}, onHangup: () => {} });
    expect(stream.dropPendingWrite()).toBe(false);
    expect(stream.write(Buffer.alloc(16 * 1024 * 1024), () => {})).toBe(false);
    expect(() => stream.dropPendingWrite('nope' as unknown as Error)).toThrow(/error must be an Error/);
    expect(stream.writeQueueSize).toBeGreaterThan(0); // still pending after the bad call
    stream.close();
    expect(stream.dropPendingWrite()).toBe(false);
    closeSync(b);
  });
});

describe('VirtioSerialStream: hang-ups while reading is paused (FIFO)', { timeout: LIVENESS_MS }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-fdstream-hup-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports the hang-up without readStart(); the bytes left behind come on resume, without a false reconnect', async () => {
    const path = join(dir, 'paused');
    execFileSync('mkfifo', [path]);
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const events: string[] = [];
    const stream = new binding.VirtioSerialStream(readFd, {}, {
      onData: (chunk) => void events.push(`data:${chunk.toString()}`),
      onError: (err) => void events.push(`error:${err.code}`),
      onHangup: () => void events.push('hangup'),
      onReconnect: () => void events.push('reconnect'),
    });
    const writer = openSync(path, constants.O_WRONLY);
    writeSync(writer, 'left behind');
    closeSync(writer);
    while (!events.includes('hangup')) await tick(5);
    expect(stream.hungUp).toBe(true);
    const base = stream.wakeups;
    await tick(200);
    expect(stream.wakeups - base).toBeLessThanOrEqual(1);
    stream.readStart();
    while (!events.includes('data:left behind')) await tick(5);
    await tick(30);
    expect(events).toEqual(['hangup', 'data:left behind']);
    expect(stream.hungUp).toBe(true);
    // A new writer is a real return.
    const second = openSync(path, constants.O_WRONLY);
    writeSync(second, 'back');
    while (!events.includes('data:back')) await tick(5);
    expect(events.slice(2)).toEqual(['reconnect', 'data:back']);
    closeSync(second);
    stream.close();
  });
});
