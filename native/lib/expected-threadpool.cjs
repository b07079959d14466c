'use strict';
// Exports src/aio/threadpool must provide (see expected-exports.cjs).
module.exports = ['ThreadPool'];
