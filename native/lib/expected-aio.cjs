'use strict';
// Exports src/aio must provide (see expected-exports.cjs).
module.exports = [];
