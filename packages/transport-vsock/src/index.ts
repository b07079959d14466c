/** @vmlink/transport-vsock: `vsock://CID:PORT` over @vmlink/vsock. */
export { vsock, VsockTransport } from './transport.js';
export {
  parseVsockAddress,
  formatVsockUri,
  CID_ANY,
  CID_HOST,
  CID_LOCAL,
  CID_HYPERVISOR,
  PORT_ANY,
  type VsockTransportAddress,
} from './address.js';
export type { VsockListener } from './transport.js';
