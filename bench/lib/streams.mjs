// Stream timing shared by the host<->guest benchmarks.

/** Counts bytes from `stream` until `total`; resolves with the seconds from the first byte to the last. */
export function timeBytes(stream, total) {
  return new Promise((resolve, reject) => {
    let received = 0;
    let started;
    stream.on('data', (chunk) => {
      started ??= performance.now();
      received += chunk.length;
      if (received >= total) resolve((performance.now() - started) / 1000);
    });
    stream.once('error', reject);
    stream.once('end', () => received < total && reject(new Error(`stream ended after ${received} of ${total} bytes`)));
  });
}
