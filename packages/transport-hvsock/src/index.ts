/** @vmlink/transport-hvsock: the host side of hybrid vsock, `hvsock:/path/to/v.sock:PORT`. */
export {
  hvsock,
  HvsockTransport,
  type HvsockConnection,
  type HvsockListenOptions,
  type HvsockTransportOptions,
} from './transport.js';
export { parseHvsockAddress, listenPathOf, UNNAMED_HVSOCK_URI, type HvsockAddress } from './address.js';
export { hybridVsockHandshake, parseOkReply, MAX_REPLY_LINE_BYTES } from './handshake.js';
