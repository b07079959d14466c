// Shared by the guest test files (they run inside the QEMU guest, CID 1 = loopback).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';

import { createServer } from '@vmlink/vsock';

export const LOOPBACK = 1;

export const sha256 = (data) => createHash('sha256').update(data).digest('hex');
export const openFds = () => readdirSync('/proc/self/fd').length;
export const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A listening stream server on an ephemeral port; `port` is where to connect. */
export async function listen(onConnection, options = {}) {
  const server = createServer(options, onConnection);
  server.listen({});
  await once(server, 'listening');
  return { server, port: server.address().port };
}

/**
 * Reads a stream to its end; resolves with one Buffer. Not `for await`: the async
 * iterator destroys the stream when done, which would end a half-open conversation.
 */
export function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/** Deterministic pseudo-random bytes (so a shifted or repeated chunk cannot hash the same). */
export function pattern(size, seed = 1) {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= size) out.writeUInt32LE(x, i);
    else for (let j = i; j < size; j++) out[j] = (x >>> ((j - i) * 8)) & 0xff;
  }
  return out;
}

/** Resolves with the error event, or rejects if the emitter closes without one. */
export function nextError(emitter) {
  return new Promise((resolve, reject) => {
    emitter.once('error', resolve);
    emitter.once('close', () => setImmediate(() => reject(new Error('closed without an error'))));
  });
}

/** Resolves with close's hadError argument. */
export function closed(emitter) {
  return new Promise((resolve) => emitter.once('close', resolve));
}
