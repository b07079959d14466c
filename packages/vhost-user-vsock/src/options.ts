import { isAbsolute, resolve } from 'node:path';
import { describeValue, invalidArgType, outOfRange, validateObject } from '@vmlink/errors';
import { VsockDeviceError, VsockDeviceErrorCode } from './errors.js';

export interface VsockDeviceOptions {
  /** vhost-user socket the device listens on; QEMU's `-chardev socket,path=...` connects to it. */
  socket: string;
  /** Hybrid-vsock base path: host clients connect here; guest connects to port P reach `${udsPath}_${P}`. */
  udsPath: string;
  /** The guest's CID, 3 .. 4294967294 (0-2 and 2^32-1 are reserved). */
  guestCid: number;
  /** Receive buffer advertised per connection (virtio-vsock buf_alloc), bytes; default 256 KiB. */
  bufAlloc?: number;
  /** Most connections (open or still handshaking) at once; default 4096. More are refused. */
  maxConnections?: number;
  /** Log lines ('log' events) per second before they are only counted; default 20. */
  logLinesPerSecond?: number;
  /**
   * Offer SOCK_SEQPACKET (VIRTIO_VSOCK_F_SEQPACKET) and listen for host -> guest seqpacket
   * connections on `${udsPath}.seqpacket`; default false (STREAM only).
   */
  seqpacket?: boolean;
  /**
   * Guest bytes passed on to the host socket, unannounced, before a CREDIT_UPDATE goes to
   * the guest on its own (data packets to the guest carry the count anyway); default
   * min(bufAlloc / 2, 128 KiB), at most bufAlloc. Each update costs the guest an rx packet
   * and an interrupt. At most min(bufAlloc, 128 KiB): a guest that stops sending before
   * this many bytes are unannounced waits forever, and a Linux 6.1 guest stops at 256 KiB
   * in flight whatever bufAlloc says (bench/hvsock README).
   */
  creditUpdateBytes?: number;
  /**
   * tx completions (guest packets consumed) gathered before the guest is interrupted for
   * them; default 32, capped at half the tx ring. The guest needs them only to free its
   * packet buffers and ring slots, so one interrupt per packet is wasted guest CPU.
   */
  txNotifyBatch?: number;
  /**
   * The longest, in µs, a tx completion waits for its interrupt when fewer than
   * txNotifyBatch have gathered; default 10000. 0 interrupts at once (after each batch of
   * guest packets handled in one wake-up). A guest under load sends a packet every few
   * ms, so a shorter wait gathers nothing.
   */
  txNotifyDelayUs?: number;
  /**
   * Guest rx buffers one read of a host socket may fill, 1..256; default 16. A Linux
   * guest posts 4 KiB buffers, so 16 reads up to 64 KiB per system call instead of 4 KiB.
   */
  rxBuffersPerRead?: number;
  /**
   * After host data reached the guest, the guest's next packet may arrive without a kick
   * (a device wake-up); the device looks at the ring within this many µs at the latest.
   * A Linux guest (6.1.y and later) sends a CREDIT_UPDATE each time a reader drains its
   * socket, just before the application's reply: deferring lets that update ride along
   * with the reply (one wake-up per request instead of two). Not while a connection runs
   * low on the guest's credit. 0 = off; default 2000 (DEFAULT_TX_KICK_DEFER_US); at most 10 s.
   */
  txKickDeferUs?: number;
  /**
   * While a guest connection streams to the host (txStreamBytes without a pause), the guest
   * kicks the tx ring only every this many packets: one device wake-up and one host write
   * per batch instead of one per guest worker run. Never more packets (of the largest size
   * the connection sent) than half the guest's credit room, nor a quarter of the ring; the
   * tail waits at most txKickDeferUs (0 turns this off too). 1 = off; default 16
   * (DEFAULT_TX_KICK_BATCH).
   */
  txKickBatch?: number;
  /**
   * Bytes a guest connection sends without a pause before txKickBatch applies to it; host
   * data to the guest on it (request/response) or txKickDeferUs without a packet ends the
   * run. Default 256 KiB (DEFAULT_TX_STREAM_BYTES): request/response traffic never waits
   * for the timer, a bulk transfer waits for it once at its tail.
   */
  txStreamBytes?: number;
}

export interface ResolvedVsockDeviceOptions {
  socket: string;
  udsPath: string;
  guestCid: number;
  bufAlloc: number;
  maxConnections: number;
  logLinesPerSecond: number;
  seqpacket: boolean;
  creditUpdateBytes: number;
  txNotifyBatch: number;
  txNotifyDelayUs: number;
  rxBuffersPerRead: number;
  txKickDeferUs: number;
  txKickBatch: number;
  txStreamBytes: number;
}

// Linux's 256 KiB default vsock buffer: a guest socket's own default, so neither side
// waits on the other's credit in bulk transfers.
export const DEFAULT_BUF_ALLOC = 256 * 1024;
// Each open connection may buffer up to bufAlloc bytes the host has not read: 4096 x
// 256 KiB bounds a device at 1 GiB even when no host reader keeps up.
export const DEFAULT_MAX_CONNECTIONS = 4096;
export const DEFAULT_LOG_LINES_PER_SECOND = 20;
// See the option docs above; the numbers come from bench/hvsock (README there).
export const DEFAULT_TX_NOTIFY_BATCH = 32;
export const DEFAULT_TX_NOTIFY_DELAY_US = 10_000;
export const MAX_TX_NOTIFY_BATCH = 32768;
export const DEFAULT_RX_BUFFERS_PER_READ = 16;
export const MAX_RX_BUFFERS_PER_READ = 256;
export const MAX_TX_NOTIFY_DELAY_US = 10_000_000;
/**
 * 2 ms: a lone guest packet after host data (no CREDIT_UPDATE before it) waits at most
 * this long; a TCG guest's read-then-reply gap is a few hundred µs. bench/hvsock, load 3-4:
 * ping-pong p50 0.93x/1.09x of virtio-serial with it vs 1.14x/1.24x without (README there).
 */
export const DEFAULT_TX_KICK_DEFER_US = 2000;
export const MAX_TX_KICK_DEFER_US = 10_000_000;
/**
 * 16 packets per tx kick while streaming: with 4 KiB packets, the default 256 KiB bufAlloc
 * and 128 KiB credit updates the guest always has the credit for 16 more (harness: tx
 * kicks, device passes and host writes per MiB 256 -> 16). Larger packets get fewer (64
 * KiB ones: at most 1 silent packet); see bench/hvsock README.
 */
export const DEFAULT_TX_KICK_BATCH = 16;
export const MAX_TX_KICK_BATCH = 32768;
/** 256 KiB in full packets in a row (a guest socket's whole default buffer) marks a stream. */
export const DEFAULT_TX_STREAM_BYTES = 256 * 1024;
export const MAX_TX_STREAM_BYTES = 2 ** 31;
/**
 * bufAlloc / 2: a bulk sender hears of freed space twice per window, half the updates
 * (and guest interrupts) of bufAlloc / 4, and still has half a window left when told.
 * Never above 128 KiB: a Linux 6.1 guest keeps at most 256 KiB in flight even when
 * bufAlloc is larger (with bufAlloc 1 MiB and updates every 512 KiB it stopped for good
 * at 262144 bytes).
 */
export const MAX_DEFAULT_CREDIT_UPDATE_BYTES = 128 * 1024;
/**
 * The largest creditUpdateBytes accepted: a Linux guest keeps at most 256 KiB in flight
 * whatever bufAlloc says, so a threshold at or above that is never reached and the
 * connection stalls for good (bench/hvsock README). Half of it leaves room for the
 * guest's packets already queued.
 */
export const MAX_CREDIT_UPDATE_BYTES = 128 * 1024;
export function defaultCreditUpdateBytes(bufAlloc: number): number {
  return Math.min(Math.floor(bufAlloc / 2), MAX_DEFAULT_CREDIT_UPDATE_BYTES);
}
export const MIN_BUF_ALLOC = 4096;
export const MAX_BUF_ALLOC = 64 * 1024 * 1024;
export const MIN_GUEST_CID = 3;
export const MAX_GUEST_CID = 0xffff_fffe;

// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES = 107;
// `${udsPath}_4294967295`: the longest per-port path the device may connect to (longer
// than the `${udsPath}.seqpacket` listener).
const PORT_SUFFIX_BYTES = '_4294967295'.length;

function validatePath(value: unknown, name: string, suffixBytes: number): string {
  if (typeof value !== 'string' || value === '') throw invalidArgType(name, 'a non-empty string', value);
  if (value.includes('\0')) throw invalidArgType(name, 'a path without NUL bytes', value);
  const absolute = isAbsolute(value) ? value : resolve(value);
  const bytes = Buffer.byteLength(absolute) + suffixBytes;
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    const what = suffixBytes > 0 ? `'${absolute}' plus a port suffix ('_4294967295')` : `'${absolute}'`;
    throw new VsockDeviceError(
      VsockDeviceErrorCode.PATH_TOO_LONG,
      `${name}: ${what} is ${bytes} bytes; a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`,
    );
  }
  return absolute;
}

function validateIntegerIn(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  return value;
}

/** Checks every option and names the bad value; relative paths are made absolute. */
export function resolveDeviceOptions(options: unknown): ResolvedVsockDeviceOptions {
  validateObject(options, 'options');
  const socket = validatePath(options.socket, 'options.socket', 0);
  const udsPath = validatePath(options.udsPath, 'options.udsPath', PORT_SUFFIX_BYTES);
  if (options.guestCid === undefined) throw invalidArgType('options.guestCid', 'of type number', options.guestCid);
  const guestCid = validateIntegerIn(options.guestCid, 'options.guestCid', MIN_GUEST_CID, MAX_GUEST_CID, 0);
  if (options.seqpacket !== undefined && typeof options.seqpacket !== 'boolean') {
    throw invalidArgType('options.seqpacket', 'of type boolean', options.seqpacket);
  }
  if (socket === udsPath) {
    throw new VsockDeviceError(VsockDeviceErrorCode.DUPLICATE, `options.socket and options.udsPath are the same path '${socket}'`);
  }
  const bufAlloc = validateIntegerIn(options.bufAlloc, 'options.bufAlloc', MIN_BUF_ALLOC, MAX_BUF_ALLOC, DEFAULT_BUF_ALLOC);
  return {
    socket,
    udsPath,
    guestCid,
    bufAlloc,
    creditUpdateBytes: validateIntegerIn(
      options.creditUpdateBytes,
      'options.creditUpdateBytes',
      1,
      Math.min(bufAlloc, MAX_CREDIT_UPDATE_BYTES),
      defaultCreditUpdateBytes(bufAlloc),
    ),
    txNotifyBatch: validateIntegerIn(options.txNotifyBatch, 'options.txNotifyBatch', 1, MAX_TX_NOTIFY_BATCH, DEFAULT_TX_NOTIFY_BATCH),
    rxBuffersPerRead: validateIntegerIn(options.rxBuffersPerRead, 'options.rxBuffersPerRead', 1, MAX_RX_BUFFERS_PER_READ, DEFAULT_RX_BUFFERS_PER_READ),
    txNotifyDelayUs: validateIntegerIn(options.txNotifyDelayUs, 'options.txNotifyDelayUs', 0, MAX_TX_NOTIFY_DELAY_US, DEFAULT_TX_NOTIFY_DELAY_US),
    txKickDeferUs: validateIntegerIn(options.txKickDeferUs, 'options.txKickDeferUs', 0, MAX_TX_KICK_DEFER_US, DEFAULT_TX_KICK_DEFER_US),
    txKickBatch: validateIntegerIn(options.txKickBatch, 'options.txKickBatch', 1, MAX_TX_KICK_BATCH, DEFAULT_TX_KICK_BATCH),
    txStreamBytes: validateIntegerIn(options.txStreamBytes, 'options.txStreamBytes', 1, MAX_TX_STREAM_BYTES, DEFAULT_TX_STREAM_BYTES),
    maxConnections: validateIntegerIn(options.maxConnections, 'options.maxConnections', 1, 1 << 20, DEFAULT_MAX_CONNECTIONS),
    logLinesPerSecond: validateIntegerIn(options.logLinesPerSecond, 'options.logLinesPerSecond', 0, 1 << 20, DEFAULT_LOG_LINES_PER_SECOND),
    seqpacket: options.seqpacket === true,
  };
}

export { describeValue };
