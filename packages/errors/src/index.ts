/**
 * Errors shared by every vmlink package. They look like Node's own: a stable `code`,
 * and for system errors `errno`, `syscall` and the address that failed.
 */
export { VmlinkError, SystemError, type SystemErrorInit } from './errors.js';
export { abortError, throwIfAborted } from './abort.js';
export {
  invalidArgType,
  outOfRange,
  validateUint32,
  validateInteger,
  validateObject,
  validateFunction,
  validateBuffer,
  validateAbortSignal,
  describeValue,
} from './validate.js';
export { unsupportedPlatform, assertLinux, isLinux } from './platform.js';
export { MIN_NODE_MAJOR, assertSupportedNode } from './node-version.js';

// Every vmlink package but the addon imports this one: an unsupported Node.js line fails
// here, at load, with a code.
import { assertSupportedNode } from './node-version.js';
assertSupportedNode();
