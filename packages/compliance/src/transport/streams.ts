import type { Duplex } from 'node:stream';

/** Write `data` in `chunkSize` pieces, waiting for 'drain' whenever write() says so. */
export async function writeAll(stream: Duplex, data: Uint8Array, chunkSize = 64 * 1024): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    if (!stream.write(data.subarray(offset, offset + chunkSize))) await drained(stream);
  }
}

/** Resolve on 'drain'; reject if the stream fails or closes first. */
export function drained(stream: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onDrain = (): void => (cleanup(), resolve());
    const onError = (error: Error): void => (cleanup(), reject(error));
    const onClose = (): void => (cleanup(), reject(new Error('stream closed while waiting for drain')));
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/**
 * Collect exactly `length` bytes. More bytes than that, or the stream ending early, is
 * an error that says how many arrived.
 */
export function readExactly(stream: Duplex, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onEnd);
      stream.pause();
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      if (received > length) {
        cleanup();
        reject(new Error(`expected ${length} bytes, received at least ${received}`));
      } else if (received === length) {
        cleanup();
        resolve(Buffer.concat(chunks, length));
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`stream ended after ${received} of ${length} bytes`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    if (length === 0) return resolve(Buffer.alloc(0));
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Read one `\n`-terminated ASCII line (at most `max` bytes); bytes after it are put back. */
export function readLine(stream: Duplex, max = 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline >= 0) {
        cleanup();
        const rest = buffered.subarray(newline + 1);
        if (rest.length > 0) stream.unshift(rest);
        resolve(buffered.subarray(0, newline).toString('latin1'));
      } else if (buffered.length > max) {
        cleanup();
        reject(new Error(`no newline within ${max} bytes`));
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`stream ended before a full line (${buffered.length} bytes buffered)`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Resolve once `stream` has emitted 'close' (at once if it already has). */
export function closed(stream: Duplex): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

/** Destroy and wait for 'close': each test leaves no Connection behind. */
export async function destroyAndWait(stream: Duplex): Promise<void> {
  const done = closed(stream);
  stream.destroy();
  await done;
}
