import type { Listener, Transport } from '@vmlink/transport';
import type { ChildTransportSpec } from './child.js';
import type { PeerHandle } from './peer.js';

/**
 * What a plugin hands the suite (the libp2p `TestSetup` idea): the transport, a peer to
 * dial, and the addresses the checks need. Everything is created in the suite's
 * `before` and released in its `after`.
 */
export interface TransportTestSetup {
  /** The transport under test; the suite dials (and listens, if it can) through it. */
  readonly transport: Transport;
  /**
   * Start the compliance peer (see `servePeer`/`startLocalPeer`) and say where to dial
   * it. It may run in this process or elsewhere (another process, a guest VM).
   */
  startPeer(): Promise<PeerHandle>;
  /** A fresh address to listen on. Required when `capabilities.listen` is true. */
  listenAddress?(): string;
  /**
   * Where to dial a listener of ours (default `listener.address()`); e.g. a vsock
   * listener bound to `any` is dialed at `local`.
   */
  dialAddressOf?(listener: Listener): string;
  /** An address where nothing listens: a dial there fails with a system error. */
  unreachableAddress(): string;
  /**
   * An address where a dial neither completes nor fails, for the `timeout` check. Only
   * some channels have one (a handshake the other side never answers); without it that
   * one check is reported as skipped.
   */
  stalledAddress?(): Promise<{ readonly address: string; close(): Promise<void> }>;
  /** How a child process builds this transport, for the no-leaked-handles checks. */
  readonly child: ChildTransportSpec;
  /** Per-test (and per-hook) timeout in ms; default 60 000 (slow guests need it). */
  readonly timeoutMs?: number;
  /** Release whatever the setup made. */
  teardown?(): Promise<void>;
}
