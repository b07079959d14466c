/** The smallest chunk a stream socket reads at a time (the addon's own default). */
export const MIN_STREAM_READ_SIZE = 64 * 1024;
/** The largest: a bound on each 'data' chunk, and on the one scratch Buffer all reads share. */
export const MAX_STREAM_READ_SIZE = 1024 * 1024;

/**
 * How many bytes one 'data' chunk of a stream socket may carry: the socket's receive
 * buffer (SO_VM_SOCKETS_BUFFER_SIZE, 256 KiB by default), so one chunk can take everything
 * the kernel holds and bulk transfers cost one JS call per buffer-full, not per 64 KiB.
 * Kept within [MIN_STREAM_READ_SIZE, MAX_STREAM_READ_SIZE]; `undefined` (the size could
 * not be read) gives the minimum.
 */
export function streamReadSize(receiveBufferSize: number | undefined): number {
  if (receiveBufferSize === undefined || !Number.isFinite(receiveBufferSize)) return MIN_STREAM_READ_SIZE;
  return Math.min(MAX_STREAM_READ_SIZE, Math.max(MIN_STREAM_READ_SIZE, Math.trunc(receiveBufferSize)));
}
