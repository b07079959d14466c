'use strict';
// Exports src/vsock must provide (see expected-exports.cjs).
module.exports = [
  'vsockSocket',
  'vsockProbe',
  'vsockBind',
  'vsockListen',
  'vsockConnect',
  'vsockConnectResult',
  'vsockSockName',
  'vsockPeerName',
  'vsockSetConnectTimeout',
  'vsockSetBufferSize',
  'vsockGetBufferSize',
  'vsockAdoptFd',
  'vsockLocalCid',
  'VsockListener',
  'vsockConstants',
];
