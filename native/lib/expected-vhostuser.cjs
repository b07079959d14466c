'use strict';
// Exports src/vhost_user must provide (see expected-exports.cjs).
module.exports = ['VhostUserVsockDevice', 'unixListen', 'vhostUserTestHelpers'];
