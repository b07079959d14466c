'use strict';
// Exports src/vsock must provide (see expected-exports.cjs).
module.exports = [];
