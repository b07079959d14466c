// One slice of one engine contestant, in a process of its own, as every fio slice is: a
// contestant run inside the long-lived bench process inherited the heap, the threads' CPU
// placement and the JIT state of every contestant before it, fio never did.
//
// `node bench/aio/lib/slice.mjs '<json>'` with { engine, file, fileSize, flags, depth,
// blockSize, pattern, options, seconds, warmupSeconds, cursor } prints one JSON line
// { ops, seconds, cursor } (cursor: where a sequential load goes on in the next slice).
import { buffers, openEngine } from './engines.mjs';
import { closedLoop, randomOffset } from './load.mjs';

/** The closed-loop load of one slice in this process (the child's body; exported for tests). */
export async function runSlice({ engine, file, fileSize, flags, depth, blockSize, pattern, options, seconds, warmupSeconds, cursor = 0 }) {
  const bufs = buffers(depth, blockSize);
  let next = cursor;
  const nextOffset =
    pattern === 'seq'
      ? () => {
          const offset = next;
          next = (next + blockSize) % fileSize;
          return offset;
        }
      : () => randomOffset(fileSize, blockSize);
  const io = await openEngine(engine, file, flags, options);
  try {
    const load = await closedLoop({ depth, seconds, warmupSeconds, op: (w) => io.read(bufs[w], nextOffset()) });
    return { ops: load.ops, seconds: load.seconds, cursor: next };
  } finally {
    await io.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runSlice(JSON.parse(process.argv[2]));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
