import type { Duplex } from 'node:stream';
import type { Connection, ConnectionPeer, Transport } from './types.js';

export interface ConnectionInfo {
  readonly transport: Transport;
  readonly localAddress: string;
  readonly remoteAddress: string;
  /** The peer's kernel-reported identity, where the plugin knows it. */
  readonly peer?: ConnectionPeer;
}

type Refable = { ref(): unknown; unref(): unknown };

/**
 * Turn a plugin's Duplex into a Connection by giving it read-only `transport`,
 * `localAddress` and `remoteAddress` (shadowing e.g. `net.Socket`'s own getters), and
 * `ref()`/`unref()` when the stream has none. No wrapper stream: bytes and
 * backpressure stay exactly the plugin's own.
 */
export function toConnection<D extends Duplex>(stream: D, info: ConnectionInfo): D & Connection {
  Object.defineProperties(stream, {
    transport: { value: info.transport, enumerable: true },
    localAddress: { value: info.localAddress, enumerable: true },
    remoteAddress: { value: info.remoteAddress, enumerable: true },
  });
  if (info.peer !== undefined) Object.defineProperty(stream, 'peer', { value: Object.freeze({ ...info.peer }), enumerable: true });
  const refable = stream as Partial<Refable>;
  if (typeof refable.ref !== 'function' || typeof refable.unref !== 'function') {
    // A stream without its own handle has nothing that keeps the loop alive.
    Object.defineProperties(stream, {
      ref: { value: function ref(this: D) { return this; } },
      unref: { value: function unref(this: D) { return this; } },
    });
  }
  return stream as D & Connection;
}
