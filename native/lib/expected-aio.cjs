'use strict';
// Exports src/aio (allocAligned, statx alignment) must provide (see expected-exports.cjs).
module.exports = ['addressOffset', 'dioAlignment', 'fileFallocate', 'fileDiscard'];
