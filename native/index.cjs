'use strict';
// Typed loader for the vmlink addon. Importing never throws: the binary is loaded on the
// first call to loadBinding(), and off Linux (or unbuilt) that call fails with a clear,
// coded error instead.
const path = require('node:path');
const expected = require('./lib/expected-exports.cjs');

let cached;

function codedError(code, message, cause) {
  const err = new Error(message, cause === undefined ? undefined : { cause });
  err.code = code;
  return err;
}

function checkExports(binding) {
  const missing = [];
  for (const [area, names] of Object.entries(expected)) {
    for (const name of names) if (!(name in binding)) missing.push(`${area}.${name}`);
  }
  if (missing.length > 0) {
    throw codedError(
      'ERR_VMLINK_NATIVE_MISMATCH',
      `@vmlink/native: the loaded addon lacks ${missing.join(', ')}; rebuild it with \`npm run build -w @vmlink/native\``,
    );
  }
  return binding;
}

/**
 * Loads (once) and returns the addon. `options.platform` lets tests pretend to be on
 * another platform; `options.dir` loads from another package directory.
 */
function loadBinding(options = {}) {
  const platform = options.platform ?? process.platform;
  if (platform !== 'linux') {
    throw codedError(
      'ERR_VMLINK_UNSUPPORTED_PLATFORM',
      `@vmlink/native needs Linux (AF_VSOCK, io_submit); this platform is '${platform}'`,
    );
  }
  if (options.dir === undefined && cached !== undefined) return cached;
  let binding;
  try {
    binding = require('node-gyp-build')(options.dir ?? path.join(__dirname));
  } catch (cause) {
    throw codedError(
      'ERR_VMLINK_NATIVE_NOT_BUILT',
      `@vmlink/native: no addon binary for ${process.platform}-${process.arch} (node ${process.versions.node}); ` +
        'build it with `npm run build -w @vmlink/native` (needs python3, make and g++)',
      cause,
    );
  }
  checkExports(binding);
  if (options.dir === undefined) cached = binding;
  return binding;
}

/** True when the addon can be loaded here (Linux and built). Never throws. */
function isAvailable(options) {
  try {
    loadBinding(options);
    return true;
  } catch {
    return false;
  }
}

module.exports = { loadBinding, isAvailable, expectedExports: expected };
