'use strict';
// The exports each area of the addon must provide. The loader refuses a binary that
// lacks any of them (an old prebuild, a partial build) with a clear error.
// Each area owns its own list; keep them in step with src/<area>.
module.exports = {
  common: ['errnoName', 'addonVersion'],
  vsock: require('./expected-vsock.cjs'),
  fdstream: require('./expected-fdstream.cjs'),
  aio: require('./expected-aio.cjs'),
  threadpool: require('./expected-threadpool.cjs'),
  iosubmit: require('./expected-iosubmit.cjs'),
  socket: ['peerCredentials'],
  pty: ['ptyOpen', 'ptySpawn', 'ptyResize', 'ptyGetSize', 'tcgetattr', 'tcsetattr', 'termiosLayout', 'PidWatcher'],
  vhostuser: require('./expected-vhostuser.cjs'),
};
