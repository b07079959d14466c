// Types and contract of src/fdstream: readers/writers for ONE non-blocking fd, driven by a
// uv_poll_t on the Node loop. No threads, no unbounded buffering. A JS Duplex sits on top:
// `_read()` -> readStart(), `push()` false -> readStop(), `_writev()` -> write(chunks).
//   FdStream            sockets and pipes: EOF ends reading (src/fdstream/fd_stream.h)
//   VirtioSerialStream  a port whose peer hangs up and comes back, such as a guest's
//                       /dev/virtio-ports/NAME: EOF is "host away", not the end
//                       (src/fdstream/virtio_serial_stream.h)
// Both share one core (src/fdstream/fd_stream_core.h) and the methods of FdStreamHandle.

/** Called with `this` = the FdStream. */
export interface FdStreamCallbacks {
  /**
   * One chunk (stream mode: up to `readSize` bytes, what one or more read() calls found)
   * or one message (`messages: true`). The Buffer is JS's to keep: the stream never
   * writes to it again. All streams of a thread read into one shared scratch Buffer; a
   * chunk is that Buffer (when full), a view of it (when at least half full) or an exact
   * copy (otherwise), so it never holds more than twice its length alive. `truncatedFrom`
   * is set, in message mode only, when the message did not fit in `readSize`: it is the
   * message's real length and `chunk` holds its first `readSize` bytes (the rest is lost:
   * the kernel drops it).
   */
  onData(chunk: Buffer, truncatedFrom: number | undefined): void;
  /** read() returned 0: the peer finished writing. Reading stops for good. */
  onEnd?(): void;
  /**
   * A read/recvmsg (or poll) error, shaped like Node's (`read ECONNRESET`: code, errno,
   * syscall). Reading stops; the owner usually destroys the stream.
   */
  onError(error: NodeJS.ErrnoException): void;
}

/** Options of `new FdStream(fd, callbacks, options)`. */
export interface FdStreamOptions {
  /**
   * Message mode (SOCK_SEQPACKET): each recvmsg is one onData call, each written chunk is
   * one send(). Zero-length messages read as EOF, so do not send them.
   */
  messages?: boolean;
  /** The most bytes one chunk carries (stream) or the largest message taken whole. Default 65536, max 64 MiB. */
  readSize?: number;
}

/** The methods both stream classes have. */
export interface FdStreamHandle {
  /** The fd, or -1 once closed. */
  readonly fd: number;
  readonly closed: boolean;
  /** Times the poll watcher woke this stream (a hung-up device must not make this climb). */
  readonly wakeups: number;
  /** Bytes of the pending write not yet accepted by the kernel. */
  readonly writeQueueSize: number;
  /** Start delivering onData (no-op when already reading or closed). */
  readStart(): void;
  /** Stop reading: the fd is no longer polled for input, the kernel buffers (and pushes back). */
  readStop(): void;
  /**
   * Writes the chunks in order (writev in stream mode; one send() each in message mode).
   * Returns true when the kernel took everything now (callback NOT called); false when
   * the rest waits for POLLOUT: then callback(null) once all is written, or
   * callback(error) (`write EPIPE`...). Throws on an immediate failure, on a closed stream
   * (EBADF) and when a write is already pending (ERR_VMLINK_WRITE_PENDING): one at a time.
   * The chunks are not copied: do not modify them until written.
   */
  write(chunks: Uint8Array | readonly Uint8Array[], callback: (error: NodeJS.ErrnoException | null) => void): boolean;
  /**
   * Gives up the pending write (e.g. one a hung-up device refuses until its peer is back,
   * whose bytes the next peer would not want): its unsent bytes are forgotten and its
   * callback runs now, before this returns, with `error` (default: `write ECONNRESET`,
   * shaped like Node's; `send ECONNRESET` in message mode). Returns false, calling
   * nothing, when no write is pending or the stream is closed. Throws a TypeError when
   * `error` is neither undefined nor an object. Bytes already taken by the kernel stay sent.
   */
  dropPendingWrite(error?: Error): boolean;
  /** Closes the fd exactly once; a pending write is dropped (its callback never runs). Idempotent. */
  close(): void;
  /** The watcher keeps the loop alive (default). */
  ref(): void;
  /** The watcher no longer keeps the loop alive. */
  unref(): void;
}

/** Sockets and pipes. */
export interface FdStream extends FdStreamHandle {
  /** Calls back once when the fd polls writable (the end of a non-blocking connect). */
  awaitWritable(callback: () => void): void;
  /** shutdown(SHUT_WR): the peer reads EOF. Sockets only (ENOTSOCK otherwise). */
  shutdown(): void;
}

/** The native FdStream class: a non-blocking fd read and written on the Node loop. */
export interface FdStreamConstructor {
  /**
   * Takes ownership of `fd` at once (closed by close(), by the garbage collector, or if
   * this constructor throws) and makes it O_NONBLOCK.
   */
  new (fd: number, options: FdStreamOptions | undefined, callbacks: FdStreamCallbacks): FdStream;
}

/** What a VirtioSerialStream reports to JavaScript. */
export interface VirtioSerialStreamCallbacks {
  /** As FdStreamCallbacks.onData (`truncatedFrom` is always undefined: stream mode). */
  onData(chunk: Buffer, truncatedFrom: undefined): void;
  /** A read error other than EOF/EIO (those are hang-ups). Reading stops. */
  onError(error: NodeJS.ErrnoException): void;
  /**
   * The peer went away. While reading: read() gave EOF (or EIO on a pty), so everything
   * the peer sent came first. While paused: the
   * device reported HUP/RDHUP; what the peer left unread comes after the next readStart()
   * and is not a reconnect. Reported once per hang-up; the fd stays open and the stream
   * waits, without spinning, for the peer to come back. A write the device refuses
   * meanwhile (EAGAIN) waits for that return, or fails, as the device decides:
   * dropPendingWrite() gives it up.
   */
  onHangup(): void;
  /**
   * The peer is back after onHangup: the fd polled writable without HUP (a virtio-serial
   * host reconnected), or data arrived (a FIFO got a new writer), or
   * the device took a write. Every such sign is confirmed by a poll() of the fd at that
   * moment (no HUP), since a wake-up's mask can be stale, and it is checked after every
   * wake-up while hung up, since a return can bring no edge of its own. Data that
   * arrives is delivered after this call. May run inside write() (the device took bytes).
   */
  onReconnect?(): void;
}

/** Options of `new VirtioSerialStream(fd, callbacks, options)`. */
export interface VirtioSerialStreamOptions {
  /** The most bytes one chunk carries (reads go on until EAGAIN or this). Default 65536, max 64 MiB. */
  readSize?: number;
}

/**
 * A port whose peer hangs up and comes back (a guest's virtio-serial port; FIFOs and ptys
 * behave alike). EOF/EIO/HUP mean "peer away": onHangup, once, then onReconnect when it is
 * back; the fd stays open throughout. Internally the fd sits in a private edge-triggered
 * epoll set (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) and the loop polls that epoll fd,
 * because a device that keeps IN|HUP set would make a level-triggered poll spin. It
 * watches from construction on, so a hang-up is reported before readStart() too.
 * Mechanism only: how long to wait for a peer, and what to do with writes meanwhile, is
 * the caller's policy (see @vmlink/transport-virtio-serial).
 */
export interface VirtioSerialStream extends FdStreamHandle {
  /** True between onHangup and onReconnect. */
  readonly hungUp: boolean;
}

/** The native VirtioSerialStream class: an FdStream on a virtio-serial port fd. */
export interface VirtioSerialStreamConstructor {
  /** Takes ownership of `fd` at once (as FdStream) and makes it O_NONBLOCK. */
  new (fd: number, options: VirtioSerialStreamOptions | undefined, callbacks: VirtioSerialStreamCallbacks): VirtioSerialStream;
}

/** The fd stream part of the addon (src/fdstream). */
export interface FdStreamBinding {
  FdStream: FdStreamConstructor;
  VirtioSerialStream: VirtioSerialStreamConstructor;
  /** A connected AF_UNIX socket pair, non-blocking and close-on-exec (in-process pipes, tests). */
  socketpair(type?: 'stream' | 'seqpacket'): [number, number];
}
