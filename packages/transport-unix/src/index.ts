/** @vmlink/transport-unix: Unix domain sockets as a @vmlink/transport plugin. */
export { unix, UnixTransport } from './transport.js';
export { parseUnixAddress, type UnixAddress } from './address.js';
export { UnixListener } from './listener.js';
