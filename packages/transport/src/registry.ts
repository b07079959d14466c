import { VmlinkError, invalidArgType } from '@vmlink/errors';
import { invalidAddress, unsupportedOperation } from './errors.js';
import { splitUri } from './uri.js';
import type { Connection, DialOptions, Listener, ListenOptions, Transport, TransportAddress } from './types.js';

export interface ResolvedAddress {
  readonly transport: Transport;
  readonly address: TransportAddress;
}

/** Several transports behind one `dial(uri)` / `listen(uri)`, chosen by URI scheme. */
export interface Transports {
  readonly transports: readonly Transport[];
  /** The transport owning `scheme` (case-insensitive), if any. */
  get(scheme: string): Transport | undefined;
  /** Find the transport for `uri` and parse it; ERR_VMLINK_INVALID_ADDRESS otherwise. */
  resolve(uri: string): ResolvedAddress;
  dial(uri: string, options?: DialOptions): Promise<Connection>;
  listen(uri: string, options?: ListenOptions): Promise<Listener>;
}

function validateTransport(value: unknown, index: number): asserts value is Transport {
  const t = value as Partial<Transport> | null;
  const ok =
    t !== null &&
    typeof t === 'object' &&
    typeof t.name === 'string' &&
    Array.isArray(t.schemes) &&
    t.schemes.every((s) => typeof s === 'string' && /^[a-z][a-z0-9+.-]*$/.test(s)) &&
    typeof t.capabilities === 'object' &&
    typeof t.parse === 'function' &&
    typeof t.dial === 'function' &&
    typeof t.listen === 'function';
  if (!ok) throw invalidArgType(`transports[${index}]`, 'a Transport (name, lower-case schemes, capabilities, parse, dial, listen)', value);
}

/**
 * `createTransports([vsock(), virtioSerial(), unix()])`. Two transports claiming the
 * same scheme is an error (ERR_VMLINK_DUPLICATE_SCHEME): the choice must be explicit.
 */
export function createTransports(list: readonly Transport[]): Transports {
  if (!Array.isArray(list)) throw invalidArgType('transports', 'an array of Transport', list);
  const byScheme = new Map<string, Transport>();
  list.forEach((transport: unknown, index) => {
    validateTransport(transport, index);
    for (const scheme of transport.schemes) {
      const owner = byScheme.get(scheme);
      if (owner) {
        throw new VmlinkError(
          'ERR_VMLINK_DUPLICATE_SCHEME',
          `Scheme '${scheme}:' is claimed by both '${owner.name}' and '${transport.name}'`,
        );
      }
      byScheme.set(scheme, transport);
    }
  });
  const transports = Object.freeze([...list]);

  const resolve = (uri: string): ResolvedAddress => {
    const { scheme } = splitUri(uri);
    const transport = byScheme.get(scheme);
    if (!transport) {
      const known = [...byScheme.keys()].map((s) => `'${s}:'`).join(', ') || 'none';
      throw invalidAddress(uri, `no transport handles scheme '${scheme}:' (known: ${known})`);
    }
    return { transport, address: transport.parse(uri) };
  };

  return {
    transports,
    get: (scheme) => byScheme.get(String(scheme).toLowerCase()),
    resolve,
    async dial(uri, options) {
      const { transport, address } = resolve(uri);
      return transport.dial(address, options);
    },
    async listen(uri, options) {
      const { transport, address } = resolve(uri);
      if (!transport.capabilities.listen) {
        throw unsupportedOperation(transport.name, `listen on '${uri}'`, 'capabilities.listen is false');
      }
      return transport.listen(address, options);
    },
  };
}
