import type { Socket } from 'node:net';
import { invalidArgType, outOfRange, validateObject } from '@vmlink/errors';
import { socketListener, validateListenOptions, type SocketEnds, type SocketListener, type Transport } from '@vmlink/transport';
import type { UnixAddress } from './address.js';
import { bindUnixSocket } from './bind.js';

/** Default permission bits of a listening socket file: the owner only. */
export const DEFAULT_SOCKET_MODE = 0o600;

/** What every listener that is a socket file takes, as `listen()` options or factory defaults. */
export interface SocketFileOptions {
  /** Permission bits of the socket file, in place before anyone can connect. */
  readonly mode?: number;
  /**
   * On EADDRINUSE, remove the file in the way if it is a socket nobody answers on, then
   * bind again. Never removes anything else.
   */
  readonly reclaimStale?: boolean;
}

export type SocketFileDefaults = Required<SocketFileOptions>;

/** A listening Unix socket; each accepted socket becomes a Connection with `peer` set. */
export type UnixListener = SocketListener<Socket>;

function validateMode(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < 0 || value > 0o777) throw outOfRange(name, 'an integer >= 0 and <= 0o777', value);
  return value;
}

function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** `options` (a factory's or a listen()'s) over `fallback`, validated; `name` prefixes errors. */
export function socketFileOptions(options: unknown, fallback: SocketFileDefaults, name = 'options'): SocketFileDefaults {
  if (options === undefined) return fallback;
  validateObject(options, name);
  return {
    mode: options.mode === undefined ? fallback.mode : validateMode(options.mode, `${name}.mode`),
    reclaimStale: options.reclaimStale === undefined ? fallback.reclaimStale : validateBoolean(options.reclaimStale, `${name}.reclaimStale`),
  };
}

/**
 * `listen()` of every plugin whose listener is a Unix socket (unix, hvsock's
 * `PATH_PORT`): validate the options over the plugin's defaults, bind (exact mode,
 * reclaim, see bind.ts), and wrap the server as a Listener that removes its file on
 * close. `describe` names the ends of each accepted socket.
 */
export async function listenUnixSocket(
  transport: Transport,
  address: UnixAddress,
  uri: string,
  options: unknown,
  defaults: SocketFileDefaults,
  describe: (socket: Socket) => SocketEnds,
): Promise<UnixListener> {
  const { signal, backlog } = validateListenOptions(options, 0x7fff_ffff);
  const { mode, reclaimStale } = socketFileOptions(options, defaults);
  const bound = await bindUnixSocket(address, { mode, reclaimStale, backlog });
  return socketListener<Socket>(transport, bound.server, { uri, describe, afterClose: () => bound.release() }, signal);
}
