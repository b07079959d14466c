// A closed-loop load: `depth` concurrent loops, each issuing the next request as soon as
// its previous one completes, for `seconds`. Counts completed operations and bytes.
import { performance } from 'node:perf_hooks';

/**
 * `op(worker, i)` performs one request and resolves to the bytes moved, or returns null
 * when that loop has nothing more to do (a size cap). The first error stops every loop and
 * is rethrown. Returns { ops, bytes, seconds, opsPerSec, bytesPerSec }.
 */
export async function closedLoop({ depth, seconds, op, warmupSeconds = 0.5 }) {
  let stop = false;
  let counting = false;
  let ops = 0;
  let bytes = 0;
  const loops = Array.from({ length: depth }, async (_, worker) => {
    let i = 0;
    while (!stop) {
      const pending = op(worker, i++);
      if (pending === null) return;
      let n;
      try {
        n = await pending;
      } catch (error) {
        stop = true;
        throw error;
      }
      if (counting) {
        ops++;
        bytes += n;
      }
    }
  });
  const all = Promise.all(loops);
  const finished = all.then(() => true, () => true);
  await Promise.race([sleep(warmupSeconds * 1000), finished]);
  counting = true;
  const start = performance.now();
  await Promise.race([sleep(seconds * 1000), finished]);
  counting = false;
  const elapsed = (performance.now() - start) / 1000;
  stop = true;
  await all;
  return { ops, bytes, seconds: elapsed, opsPerSec: ops / elapsed, bytesPerSec: bytes / elapsed };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random 4 KiB-aligned offset for a `blockSize` request inside `fileSize`. */
export function randomOffset(fileSize, blockSize) {
  return Math.floor(Math.random() * (fileSize / blockSize)) * blockSize;
}
