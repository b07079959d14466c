'use strict';
// Exports src/aio/iosubmit must provide (see expected-exports.cjs).
module.exports = ['IoSubmitContext', 'ioSubmitLayout'];
