/**
 * @vmlink/transport: one interface for host/guest byte-stream channels. Plugins
 * (vsock, virtio-serial, unix) implement `Transport`; users pick them by URI scheme.
 */
export type {
  Transport,
  TransportAddress,
  TransportCapabilities,
  Connection,
  ConnectionPeer,
  Listener,
  ListenerEventMap,
  DialOptions,
  ListenOptions,
} from './types.js';
export { invalidAddress, unsupportedOperation, dialTimeoutError } from './errors.js';
export { splitUri, splitUriFor, parseDecimal, resolveAddress, type SplitUri } from './uri.js';
export { toConnection, type ConnectionInfo } from './connection.js';
export { ListenerBase } from './listener.js';
export { dialWithDeadline, validateDialOptions } from './deadline.js';
export { createTransports, type Transports, type ResolvedAddress } from './registry.js';
export { backoffDelay, validateBackoff, DEFAULT_BACKOFF, type Backoff, type BackoffOptions } from './backoff.js';
export {
  reconnecting,
  ReconnectingClient,
  type ReconnectingOptions,
  type ReconnectingEventMap,
  type ReconnectingState,
  type RetryInfo,
} from './reconnecting.js';
export { loadInstalledTransports, splitPluginSpecifier, TRANSPORT_PLUGIN_ERROR, type InstalledTransports, type LoadTransportsOptions } from './installed.js';
export {
  dialSocket,
  socketListener,
  SocketListener,
  validateListenOptions,
  whenListening,
  type ConnectingSocket,
  type SocketDialSpec,
  type SocketEnds,
  type SocketListenerSpec,
  type SocketServer,
} from './socket-like.js';
