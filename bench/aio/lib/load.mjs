// A closed-loop load: `depth` concurrent loops, each issuing the next request as soon as
// its previous one completes, for `seconds`. Counts completed operations and bytes.
import { performance } from 'node:perf_hooks';

/**
 * `op(worker, i)` performs one request and resolves to the bytes moved. Returns
 * { ops, bytes, seconds, opsPerSec, bytesPerSec }.
 */
export async function closedLoop({ depth, seconds, op, warmupSeconds = 0.5 }) {
  let stop = false;
  let counting = false;
  let ops = 0;
  let bytes = 0;
  const loops = Array.from({ length: depth }, async (_, worker) => {
    let i = 0;
    while (!stop) {
      const n = await op(worker, i++);
      if (counting) {
        ops++;
        bytes += n;
      }
    }
  });
  await sleep(warmupSeconds * 1000);
  counting = true;
  const start = performance.now();
  await sleep(seconds * 1000);
  counting = false;
  const elapsed = (performance.now() - start) / 1000;
  stop = true;
  await Promise.all(loops);
  return { ops, bytes, seconds: elapsed, opsPerSec: ops / elapsed, bytesPerSec: bytes / elapsed };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random 4 KiB-aligned offset for a `blockSize` request inside `fileSize`. */
export function randomOffset(fileSize, blockSize) {
  return Math.floor(Math.random() * (fileSize / blockSize)) * blockSize;
}
