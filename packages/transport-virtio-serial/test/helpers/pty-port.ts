import { spawnSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { loadBinding } from '@vmlink/native';

type FdStream = InstanceType<ReturnType<typeof loadBinding>['FdStream']>;

/**
 * A stand-in for a virtio-serial port whose host leaves and comes back, made of a real
 * pty: the guest listener gets the master; the host end is the slave. Closing the last
 * slave fd is a hang-up (the master reads EIO and polls HUP), opening the slave again is
 * a host coming back; bytes queued while nobody held the slave stay queued. Unlike QEMU,
 * the host here decides exactly when the guest sees it leave: that is what lets a test
 * play a hang-up report that arrives late.
 */
export interface PtyPort {
  /** Give this fd to the guest listener (it takes ownership). */
  readonly guestFd: number;
  /** The host end (the slave) as it is now; undefined while the host is away. */
  readonly host: PtyHost | undefined;
  /** Close the host end: the guest sees a hang-up. */
  hangUp(): void;
  /** Open the host end again (the port is back for the guest); `reading: false` leaves the guest's bytes queued. */
  reopen(options?: { reading: boolean }): PtyHost;
  close(): void;
}

export interface PtyHost {
  write(bytes: Buffer): Promise<void>;
  /** Everything the guest wrote that this host end has read. */
  received(): Buffer;
}

/** Raw mode on the tty behind `path` (no newline translation, no echo): node has no tcsetattr. */
function setRaw(path: string): void {
  const result = spawnSync('python3', ['-c', 'import os, sys, tty\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\ntty.setraw(fd)\nos.close(fd)', path], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`python3 could not make ${path} raw: ${result.stderr || result.error?.message}`);
}

/** The host end starts open; `reading: false` makes it leave what the guest writes queued (the port fills). */
export function startPtyPort(options = { reading: true }): PtyPort {
  const binding = loadBinding();
  const { master, slave, path } = binding.ptyOpen(80, 24);
  setRaw(path);
  let current: { stream: FdStream; host: PtyHost } | undefined;

  const attach = (fd: number, reading: boolean): PtyHost => {
    let bytes = Buffer.alloc(0);
    const stream: FdStream = new binding.FdStream(fd, {}, {
      onData: (chunk: Buffer) => (bytes = Buffer.concat([bytes, chunk])),
      onError: () => {},
    });
    if (reading) stream.readStart();
    const host: PtyHost = {
      write: (data) =>
        new Promise((resolve, reject) => {
          const done = stream.write(data, (error) => (error ? reject(error) : resolve()));
          if (done) resolve();
        }),
      received: () => bytes,
    };
    current = { stream, host };
    return host;
  };
  attach(slave, options.reading);
  const hangUp = (): void => {
    current?.stream.close();
    current = undefined;
  };

  return {
    guestFd: master,
    get host() {
      return current?.host;
    },
    hangUp,
    reopen: (options = { reading: true }) => {
      if (current) throw new Error('the host end is open already');
      return attach(openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK), options.reading);
    },
    close: hangUp, // the master is the listener's (it took ownership)
  };
}
