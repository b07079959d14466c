/**
 * @vmlink/vsock: AF_VSOCK for Node.js, shaped like node:net. Everything runs on the Node
 * event loop (no threads): non-blocking sockets watched by the @vmlink/native addon.
 */
export {
  VMADDR_CID_ANY,
  VMADDR_CID_HYPERVISOR,
  VMADDR_CID_LOCAL,
  VMADDR_CID_HOST,
  VMADDR_PORT_ANY,
  VMADDR_FLAG_TO_HOST,
} from './constants.js';
export { vsockUri, type VsockAddress, type VsockSocketAddress } from './address.js';
export type { ConnectOptions } from './options.js';
export { VsockSocket, connect, createConnection, type VsockSocketOptions, type VsockConnectOptions } from './socket.js';
export { VsockAgent, type VsockAgentOptions } from './http.js';
export {
  VsockSeqpacketSocket,
  connectSeqpacket,
  type SeqpacketSocketOptions,
  type SeqpacketConnectOptions,
  type SendCallback,
} from './seqpacket.js';
export type { SocketType } from './binding.js';
export { VsockServer, createServer, createSeqpacketServer, type ListenOptions, type VsockServerOptions } from './server.js';
export { isSupported, isSeqpacketSupported, isDatagramSupported, createDatagramSocket, localCid } from './probe.js';
