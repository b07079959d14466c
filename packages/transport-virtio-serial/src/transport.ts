import { constants, openSync } from 'node:fs';
import { throwIfAborted, validateAbortSignal, validateInteger, validateObject, invalidArgType } from '@vmlink/errors';
import {
  dialWithDeadline,
  resolveAddress,
  unsupportedOperation,
  type Connection,
  type DialOptions,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportCapabilities,
} from '@vmlink/transport';
import { GUEST_SCHEME, HOST_SCHEME, parseVirtioSerialAddress, type VirtioSerialAddress } from './address.js';
import { HANGUP_GRACE_MS, VirtioSerialListener } from './guest-listener.js';
import { dialHost } from './host.js';

/** Which end(s) of the port this transport object serves. */
export type VirtioSerialSide = 'guest' | 'host' | 'both';

export interface VirtioSerialOptions {
  /**
   * 'both' (default): `virtio-serial:NAME` (listen, in the guest) and
   * `virtio-serial+unix:/path` (dial, on the host). 'host' or 'guest' keep one scheme,
   * so the capabilities describe exactly that side (e.g. `listen: false` on the host).
   */
  readonly side?: VirtioSerialSide;
  /**
   * Guest side: how long the port may stay away after a hang-up before an open, reading
   * Connection is reset (ms, default 500 = HANGUP_GRACE_MS; 0 resets at once). A former
   * host's departure can be reported after the new host connected (see the README's wire
   * protocol); then the port is back at once and the Connection goes on.
   */
  readonly hangupGraceMs?: number;
}

/** The largest hangupGraceMs: a minute (a host gone longer is gone). */
const MAX_HANGUP_GRACE_MS = 60_000;

const SCHEMES: Record<VirtioSerialSide, readonly string[]> = {
  both: Object.freeze([GUEST_SCHEME, HOST_SCHEME]),
  guest: Object.freeze([GUEST_SCHEME]),
  host: Object.freeze([HOST_SCHEME]),
};

/**
 * virtio-serial as a @vmlink/transport plugin. One host at a time per port
 * (multiConnection false); half-close is emulated with END records; no message
 * boundaries. The guest listens, the host dials (QEMU is the server of the socket).
 */
export class VirtioSerialTransport implements Transport<VirtioSerialAddress> {
  readonly name = 'virtio-serial';
  readonly schemes: readonly string[];
  readonly capabilities: TransportCapabilities;
  readonly side: VirtioSerialSide;
  readonly #hangupGraceMs: number;

  constructor(options: VirtioSerialOptions = {}) {
    validateObject(options, 'options');
    const side = options.side ?? 'both';
    if (side !== 'both' && side !== 'host' && side !== 'guest') throw invalidArgType('options.side', "'both', 'host' or 'guest'", side);
    this.side = side;
    this.#hangupGraceMs = options.hangupGraceMs === undefined ? HANGUP_GRACE_MS : validateInteger(options.hangupGraceMs, 'options.hangupGraceMs', 0, MAX_HANGUP_GRACE_MS);
    this.schemes = SCHEMES[side];
    this.capabilities = Object.freeze({
      multiConnection: false,
      halfClose: true,
      messageBoundaries: false,
      listen: side !== 'host',
    });
  }

  parse(uri: string): VirtioSerialAddress {
    return parseVirtioSerialAddress(uri, this.schemes);
  }

  dial(address: VirtioSerialAddress | string, options?: DialOptions): Promise<Connection> {
    let target: VirtioSerialAddress;
    try {
      target = resolveAddress(address, (uri) => this.parse(uri));
    } catch (error) {
      return Promise.reject(error);
    }
    if (target.scheme === GUEST_SCHEME) {
      return Promise.reject(
        unsupportedOperation(
          this.name,
          `dial '${target.uri}'`,
          `the host starts every Connection (only it can say HELLO); in the guest listen('${target.uri}'), on the host dial '${HOST_SCHEME}:/path/to/chardev.sock'`,
        ),
      );
    }
    return dialWithDeadline(target.uri, options, (signal) => dialHost(this, target, signal));
  }

  async listen(address: VirtioSerialAddress | string, options: ListenOptions = {}): Promise<Listener> {
    const target = resolveAddress(address, (uri) => this.parse(uri));
    validateObject(options, 'options');
    validateAbortSignal(options.signal, 'options.signal');
    if (options.backlog !== undefined) validateInteger(options.backlog, 'options.backlog', 1, 0x7fff_ffff);
    if (target.scheme === HOST_SCHEME) {
      throw unsupportedOperation(
        this.name,
        `listen on '${target.uri}'`,
        `QEMU is the server of the chardev socket: dial '${target.uri}' from the host, listen on '${GUEST_SCHEME}:NAME' in the guest`,
      );
    }
    throwIfAborted(options.signal);
    // A char device open never blocks; EBUSY when another process (or listener) holds the port.
    const fd = openSync(target.devicePath, constants.O_RDWR | constants.O_NONBLOCK);
    return new VirtioSerialListener(this, fd, target.uri, options.signal, { hangupGraceMs: this.#hangupGraceMs });
  }
}

/** `createTransports([vsock(), virtioSerial(), unix()])`. */
export function virtioSerial(options?: VirtioSerialOptions): VirtioSerialTransport {
  return new VirtioSerialTransport(options);
}
