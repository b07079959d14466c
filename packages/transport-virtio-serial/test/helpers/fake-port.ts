import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBinding } from '@vmlink/native';

type FdStream = InstanceType<ReturnType<typeof loadBinding>['FdStream']>;

/**
 * A stand-in for QEMU + a virtio-serial port, made of real fds: the guest end is one
 * side of a socketpair (what the listener gets instead of /dev/virtio-ports/NAME), and a
 * Unix socket server plays QEMU's chardev socket: one host client at a time (later ones
 * wait, as with QEMU), bytes forwarded both ways, and nothing said to the guest when a
 * host leaves (a socketpair has no hang-up: this is the "guest missed the hang-up" case).
 */
export interface FakePort {
  /** Give this fd to the guest listener. */
  readonly guestFd: number;
  /** Dial `virtio-serial+unix:${socketPath}`. */
  readonly socketPath: string;
  /** Write bytes into the guest's side as if a former host had sent them. */
  injectToGuest(bytes: Buffer): Promise<void>;
  /** Drop the current host client at once (like a killed host process). */
  dropHost(): void;
  close(): Promise<void>;
}

export async function startFakePort(): Promise<FakePort> {
  const binding = loadBinding();
  const dir = mkdtempSync(join(tmpdir(), 'vmlink-vs-fake-'));
  const socketPath = join(dir, 'chardev.sock');
  const [guestFd, bridgeFd] = binding.socketpair('stream');
  let current: Socket | undefined;
  const waiting: Socket[] = [];
  const queue: Array<{ bytes: Buffer; done: () => void }> = [];
  let writing = false;

  const bridge: FdStream = new binding.FdStream(bridgeFd, {}, {
    onData: (chunk: Buffer) => current?.write(chunk),
    onError: () => {},
  });
  bridge.readStart();

  // One native write at a time, in order; the host is paused while its bytes wait.
  const pump = (): void => {
    while (!writing && queue.length > 0) {
      const { bytes, done } = queue.shift() as { bytes: Buffer; done: () => void };
      const sync = bridge.write(bytes, () => {
        writing = false;
        done();
        pump();
      });
      if (sync) done();
      else writing = true;
    }
  };
  const toGuest = (bytes: Buffer, done: () => void): void => {
    queue.push({ bytes, done });
    pump();
  };

  const serve = (socket: Socket): void => {
    current = socket;
    socket.on('data', (chunk: Buffer) => {
      socket.pause();
      toGuest(chunk, () => {
        if (current === socket) socket.resume();
      });
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (current !== socket) return;
      current = undefined;
      const next = waiting.shift();
      if (next) serve(next);
    });
    socket.resume();
  };

  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    if (current) waiting.push(socket);
    else serve(socket);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));

  return {
    guestFd,
    socketPath,
    injectToGuest: (bytes) => new Promise((resolve) => toGuest(bytes, resolve)),
    dropHost: () => current?.destroy(),
    close: async () => {
      for (const socket of [current, ...waiting]) socket?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      bridge.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
