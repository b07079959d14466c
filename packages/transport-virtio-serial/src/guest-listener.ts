import { ListenerBase, toConnection, type Transport } from '@vmlink/transport';
import { UNNAMED_HOST_URI } from './address.js';
import { nativeBinding, type VirtioSerialStream } from './binding.js';
import { connectionReset, destroyedError, protocolError } from './errors.js';
import { FrameReader } from './frame-reader.js';
import { GuestConnection, type GuestPortLink } from './guest-connection.js';
import { FrameType, encodeData, encodeHeader, type Header } from './wire.js';

/** Bytes read ahead of a Connection that does not read (see deliver()). */
const READ_AHEAD = 1024 * 1024;
/**
 * The default of how long the port may stay away after a hang-up before it ends an open
 * Connection (VirtioSerialOptions.hangupGraceMs). The hang-up may be a former host's,
 * reported late (see onHangup()); then the port is back as soon as the guest kernel
 * handles the next control message, and the Connection goes on. A host that did leave is
 * seen this much later (a new host's HELLO ends the session at once).
 */
export const HANGUP_GRACE_MS = 500;

export interface GuestListenerOptions {
  /** See VirtioSerialOptions.hangupGraceMs (validated there). */
  readonly hangupGraceMs: number;
}

interface QueuedWrite {
  readonly records: Uint8Array[];
  /** The Connection the bytes belong to; undefined for the port's own records (ACK, END). */
  readonly owner: GuestConnection | undefined;
  readonly nonce: bigint;
  readonly callback: ((error: Error | null) => void) | undefined;
}

/**
 * Where the port stands with the host:
 * - idle: no host session; bytes are stale and skipped until a HELLO.
 * - acked: we answered HELLO(nonce) with ACK and wait for OPEN(nonce).
 * - open: a session; its Connection may already be gone (then its DATA is discarded).
 */
type Phase = 'idle' | 'acked' | 'open';

/** Where our ACK of the current HELLO stands: a hang-up can drop it before it went out. */
type AckState = 'queued' | 'sent' | 'lost';

/**
 * The guest side: owns the port's fd (opened O_NONBLOCK, read and written by the native
 * VirtioSerialStream: no pool thread, no spinning while the host is away)
 * and turns each host handshake into a new Connection.
 */
export class VirtioSerialListener extends ListenerBase implements GuestPortLink {
  private readonly stream: VirtioSerialStream;
  private readonly reader: FrameReader;
  private phase: Phase = 'idle';
  private nonce: bigint | undefined;
  private ack: AckState = 'queued';
  private connection: GuestConnection | undefined;
  private readonly queue: QueuedWrite[] = [];
  /** The write the kernel refused part of (EAGAIN): it finishes when the port has room. */
  private inFlight: QueuedWrite | undefined;
  /** Reading stopped for a Connection that does not read (READ_AHEAD). */
  private readAheadFull = false;
  /** Runs out when the port stays away after a hang-up that found a Connection open. */
  private graceTimer: NodeJS.Timeout | undefined;
  private refed = true;

  /** Takes ownership of `fd` (an open virtio-serial port, or a stand-in in tests). */
  constructor(
    transport: Transport,
    fd: number,
    private readonly uri: string,
    signal?: AbortSignal,
    private readonly options: GuestListenerOptions = { hangupGraceMs: HANGUP_GRACE_MS },
  ) {
    super(transport, signal);
    this.reader = new FrameReader(
      {
        header: (header) => this.onHeader(header),
        payload: (bytes) => this.deliver(bytes),
        desync: (firstByte) =>
          this.endSession(
            firstByte === 0
              ? connectionReset('read', uri, 'the host went away: a new host connected') // its filler
              : protocolError(uri, 'bytes from the host are not a record header'),
          ),
      },
      { scanning: true }, // whatever a former host left in the port is stale
    );
    const { VirtioSerialStream } = nativeBinding();
    this.stream = new VirtioSerialStream(fd, undefined, {
      onData: (chunk) => this.reader.feed(chunk),
      onError: (error) => this.onReadError(error),
      onHangup: () => this.onHangup(),
      onReconnect: () => this.clearGrace(),
    });
    this.stream.readStart();
  }

  address(): string {
    return this.uri;
  }

  /** Native wake-ups so far: a hung-up port must not make this climb (no spinning). */
  get wakeups(): number {
    return this.stream.wakeups;
  }

  /** True while the host is away (between the hang-up and its return). */
  get hostAway(): boolean {
    return this.stream.hungUp;
  }

  ref(): this {
    this.refed = true;
    this.updateRef();
    return this;
  }

  unref(): this {
    this.refed = false;
    this.updateRef();
    return this;
  }

  /** @internal GuestPortLink plumbing for this listener's GuestConnection. */
  updateRef(): void {
    if (this.stream.closed) return;
    const keepAlive = (this.refed && !this.closed) || (this.connection?.refed ?? false);
    if (keepAlive) this.stream.ref();
    else this.stream.unref();
  }

  protected closeHandle(): Promise<void> {
    // An open Connection keeps the fd (it is the same channel); it closes with it.
    if (this.connection === undefined) this.stream.close();
    else this.updateRef();
    return Promise.resolve();
  }

  // ---- reading ---------------------------------------------------------------------

  private onHeader(header: Header): boolean {
    const current = header.nonce === this.nonce;
    switch (header.type) {
      case FrameType.hello:
        if (!current) this.startSession(header.nonce);
        else if (this.phase === 'acked' && this.ack === 'lost') this.sendAck(header.nonce);
        return true; // ours again: the host repeats HELLO until it sees our ACK
      case FrameType.open:
        if (!current || this.phase !== 'acked') return false;
        this.openConnection();
        return true;
      case FrameType.data:
        return current && this.phase === 'open';
      case FrameType.end:
        if (!current || this.phase !== 'open') return false;
        this.connection?.hostEnded();
        return true;
      default:
        return false;
    }
  }

  /**
   * The guest kernel learns of hosts coming and going on virtio-serial's control queue and
   * gets their bytes on the data queue, and the two are not ordered: a former host's
   * departure can be reported after the new host's HELLO was read and answered, even
   * after its OPEN. So a hang-up is not always the current host's:
   * - between ACK and OPEN no Connection exists: the session is kept (if this host did
   *   leave, the next one's HELLO replaces it). Ending it would ignore the host's OPEN and
   *   leave its dial resolved on a Connection nobody serves (seen in CI's arm64 guest).
   * - with a Connection open and reading, between two records, the port gets
   *   hangupGraceMs to come back before the Connection is reset.
   * - a host that left in the middle of a record did leave: the Connection ends at once
   *   (a new host's filler would otherwise complete the record as data).
   * - so does a Connection that does not read (read-ahead full): reading must go on for
   *   the next host's HELLO to be seen.
   */
  private onHangup(): void {
    const graceMs = this.options.hangupGraceMs;
    if (graceMs > 0 && this.phase === 'open' && this.connection !== undefined && !this.readAheadFull && this.reader.betweenRecords) {
      this.clearGrace();
      this.graceTimer = setTimeout(() => {
        this.graceTimer = undefined;
        if (this.stream.hungUp && !this.stream.closed) this.hostLeft();
      }, graceMs);
      this.graceTimer.unref(); // the listener and its Connection keep the process alive, not this
      return;
    }
    this.hostLeft();
  }

  private clearGrace(): void {
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }

  /** The host is gone: its session (unless only ACKed) and its waiting write with it. */
  private hostLeft(): void {
    // Everything the host sent was read (EOF) or is read later as stale bytes (HUP while
    // paused). A record it left unfinished is dropped; the next host starts with HELLO.
    this.reader.scan();
    if (this.phase !== 'acked') this.endSession(connectionReset('read', this.uri, 'the host went away'));
    // A write the kernel refused (EAGAIN) would wait for the next host, who would only
    // discard its bytes: give it up (its callback runs, then pump() goes on).
    this.stream.dropPendingWrite(connectionReset('write', this.uri, 'the host went away'));
  }

  private onReadError(error: Error): void {
    this.endSession(error);
    this.reportError(error);
    void this.close();
  }

  /**
   * Hand DATA to the Connection. Reading goes on past its highWaterMark, up to
   * READ_AHEAD bytes. Hang-ups are reported while paused, but one can be missed (the host
   * left and a new one connected before this process ran): then only the new host's HELLO
   * in the byte stream ends the old session, and a paused reader would not see it. What a
   * vanished host left in flight is far less than READ_AHEAD (the virtqueue's buffers).
   */
  private deliver(bytes: Buffer): void {
    const connection = this.connection;
    if (connection === undefined) return; // its Connection is gone: the host's DATA is dropped
    connection.deliver(bytes);
    if (connection.readableLength >= READ_AHEAD) {
      this.readAheadFull = true;
      this.stream.readStop();
    }
  }

  /** @internal GuestPortLink plumbing for this listener's GuestConnection. */
  resumeReading(): void {
    this.readAheadFull = false;
    if (!this.stream.closed) this.stream.readStart();
  }

  // ---- sessions --------------------------------------------------------------------

  /** A new host said HELLO: the former session (if any) is over; answer ACK. */
  private startSession(nonce: bigint): void {
    this.endSession(connectionReset('read', this.uri, 'a new host connected'));
    if (this.closed) return; // not accepting: stay silent, the host's dial times out
    this.nonce = nonce;
    this.phase = 'acked';
    this.sendAck(nonce);
  }

  /** ACK(nonce); if a hang-up drops it unsent, the host's next HELLO asks for it again. */
  private sendAck(nonce: bigint): void {
    this.ack = 'queued';
    const settled = (error: Error | null): void => {
      if (this.nonce === nonce) this.ack = error ? 'lost' : 'sent';
    };
    this.enqueue({ records: [encodeHeader(FrameType.ack, nonce)], owner: undefined, nonce, callback: settled });
  }

  private openConnection(): void {
    const nonce = this.nonce as bigint;
    this.phase = 'open';
    if (this.closed) return;
    const connection = new GuestConnection(
      this,
      nonce,
      (chunks) => encodeData(nonce, chunks),
      () => encodeHeader(FrameType.end, nonce),
    );
    this.connection = connection;
    this.updateRef();
    this.accept(toConnection(connection, { transport: this.transport, localAddress: this.uri, remoteAddress: UNNAMED_HOST_URI }));
  }

  /** The host left (or was replaced, or garbled the stream): reset its Connection. */
  private endSession(error: Error): void {
    this.clearGrace();
    const connection = this.connection;
    const nonce = this.nonce;
    this.phase = 'idle';
    this.nonce = undefined;
    if (nonce !== undefined) this.dropQueued(nonce, error);
    if (connection && !connection.destroyed) {
      if (connection.readableEnded && connection.writableFinished) connection.destroy();
      else connection.destroy(error);
    }
    // Bytes of an ended session only delay the next host's ACK (it discards them).
    if (nonce !== undefined && this.inFlight?.nonce === nonce) {
      this.stream.dropPendingWrite(connectionReset('write', this.uri, 'the session ended'));
    }
  }

  /** @internal GuestPortLink plumbing for this listener's GuestConnection. */
  connectionClosed(connection: GuestConnection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.dropQueued(connection.nonce, destroyedError(), connection);
    // Tell the host, unless it already knows: it then discards nothing but our DATA.
    if (!connection.sentEnd && this.phase === 'open' && this.nonce === connection.nonce) {
      connection.sentEnd = true;
      this.enqueue({ records: [encodeHeader(FrameType.end, connection.nonce)], owner: undefined, nonce: connection.nonce, callback: undefined });
    }
    if (this.closed) {
      this.stream.close();
      return;
    }
    this.updateRef();
    this.resumeReading(); // a paused Connection may have stopped the reader
  }

  // ---- writing: one native write at a time, in order ------------------------------

  /** @internal GuestPortLink plumbing for this listener's GuestConnection. */
  send(owner: GuestConnection, records: Uint8Array[], callback: (error: Error | null) => void): void {
    if (owner !== this.connection || this.nonce !== owner.nonce) {
      callback(connectionReset('write', this.uri, 'the host went away'));
      return;
    }
    this.enqueue({ records, owner, nonce: owner.nonce, callback });
  }

  private enqueue(write: QueuedWrite): void {
    this.queue.push(write);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight === undefined && this.queue.length > 0 && !this.stream.closed) {
      const write = this.queue.shift() as QueuedWrite;
      let done: boolean;
      try {
        // While the host is away the kernel says EAGAIN: the write waits for it to come
        // back (or is dropped on hang-up). Bytes that reach the next host before its ACK
        // are discarded by it.
        done = this.stream.write(write.records, (error) => {
          this.inFlight = undefined;
          write.callback?.(error);
          this.pump();
        });
      } catch (error) {
        write.callback?.(error as Error);
        continue;
      }
      if (done) write.callback?.(null);
      else this.inFlight = write;
    }
  }

  /** Forget queued (not yet started) writes of a session; their callbacks get `error`. */
  private dropQueued(nonce: bigint, error: Error, owner?: GuestConnection): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const write = this.queue[i] as QueuedWrite;
      if (write.nonce === nonce && (owner === undefined || write.owner === owner)) {
        this.queue.splice(i, 1);
        write.callback?.(error);
      }
    }
  }
}
