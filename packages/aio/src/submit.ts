import { invalidArgType } from '@vmlink/errors';
import { unknownOp } from './errors.js';
import type { AioFile, AioRequest, AioResult } from './types.js';

/**
 * AioBackend.submit() for backends whose files do the work: each request goes to its own
 * file's method, and one failure does not fail the others. Results come in submission
 * order, shaped like Promise.allSettled. Backends that batch get their batching from the
 * files (e.g. a queue flushed once per tick), not from here.
 */
export async function submitRequests(requests: readonly AioRequest[]): Promise<AioResult[]> {
  if (!Array.isArray(requests)) throw invalidArgType('requests', 'an Array of AioRequest', requests);
  const settled = await Promise.allSettled(requests.map((request: AioRequest) => startRequest(request)));
  return settled.map((result): AioResult =>
    result.status === 'fulfilled' ? { status: 'fulfilled', value: result.value } : { status: 'rejected', reason: toError(result.reason) },
  );
}

/** One request of a batch; a malformed request rejects only its own slot. */
function startRequest(request: AioRequest): Promise<number> {
  if (request === null || typeof request !== 'object') {
    return Promise.reject(invalidArgType('request', 'of type object', request));
  }
  const file = request.file as AioFile | undefined;
  if (file === null || typeof file !== 'object' || typeof file.read !== 'function') {
    return Promise.reject(invalidArgType('request.file', 'an AioFile', file));
  }
  const options = request.signal === undefined ? undefined : { signal: request.signal };
  switch (request.op) {
    case 'read':
      return file.read(request.buffer, request.position, options);
    case 'readv':
      return file.readv(request.buffers, request.position, options);
    case 'write':
      return file.write(request.buffer, request.position, options);
    case 'writev':
      return file.writev(request.buffers, request.position, options);
    case 'fsync':
      return file.fsync(options).then(() => 0);
    case 'fdatasync':
      return file.fdatasync(options).then(() => 0);
    case 'fallocate':
      return file.fallocate(request.mode, request.offset, request.length, options).then(() => 0);
    case 'truncate':
      return file.truncate(request.size, options).then(() => 0);
    case 'discard':
      return file.discard(request.offset, request.length, options).then(() => 0);
    default:
      return Promise.reject(unknownOp(request));
  }
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
