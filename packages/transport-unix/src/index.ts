/** @vmlink/transport-unix: Unix domain sockets as a @vmlink/transport plugin. */
export { unix, UnixTransport, type UnixListenOptions, type UnixTransportOptions } from './transport.js';
export { parseUnixAddress, netPath, UNNAMED_UNIX_URI, type UnixAddress } from './address.js';
export {
  listenUnixSocket,
  socketFileOptions,
  DEFAULT_SOCKET_MODE,
  type SocketFileOptions,
  type SocketFileDefaults,
  type UnixListener,
} from './listen.js';
export { bindUnixSocket, type BindOptions, type BoundSocket } from './bind.js';
export { reclaimStaleSocket } from './reclaim.js';
export { unixPeer } from './peer.js';
