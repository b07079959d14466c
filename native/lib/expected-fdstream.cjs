'use strict';
// Exports src/fdstream must provide (see expected-exports.cjs).
module.exports = ['FdStream', 'VirtioSerialStream', 'socketpair'];
