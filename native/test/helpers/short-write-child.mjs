// Run under `ulimit -f 4` (RLIMIT_FSIZE = 4096 bytes; Node ignores SIGXFSZ): writes 8192
// bytes at 0 to <path> through one engine, then one more byte past the limit, and prints
// both completions as JSON. The kernel cuts the first write at the limit and fails the
// next one with EFBIG: a real short write without filling a disk.
//   node short-write-child.mjs pool|iosubmit <path>
import { openSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const binding = require('../../index.cjs').loadBinding();
const [engineName, path] = process.argv.slice(2);
const fd = openSync(path, 'w+');

const Engine = engineName === 'pool' ? binding.ThreadPool : binding.IoSubmitContext;
const layout = Engine.layout;
const completions = new Float64Array(4 * layout.completionStride);
const received = [];
let wake;
const onComplete = (count) => {
  for (let i = 0; i < count; i++) {
    const base = i * layout.completionStride;
    received.push({
      slot: completions[base + layout.completion.slot],
      result: completions[base + layout.completion.result],
      partial: completions[base + layout.completion.partial],
    });
  }
  wake?.();
};
const engine =
  engineName === 'pool'
    ? new Engine({ minThreads: 1, maxThreads: 1, idleTimeoutMs: 1000, maxHoldUs: 0, maxHeld: 1, scheduling: 'normal', completions }, onComplete)
    : new Engine({ maxInFlight: 4, completions }, onComplete);

async function write(slot, position, buffers) {
  const requests = new Float64Array(layout.requestStride);
  requests[layout.request.slot] = slot;
  requests[layout.request.op] = layout.ops.write;
  requests[layout.request.fd] = fd;
  requests[layout.request.positionLow] = position;
  const status = new Int32Array(1);
  const records = new Float64Array(2 * layout.recordStride);
  engine.submit(requests, 1, [buffers], status, records);
  if (status[0] !== 0) throw new Error(`status ${status[0]}`);
  await new Promise((resolve) => {
    wake = resolve;
    if (received.length > slot) resolve();
  });
}

// Two buffers, so the pool's loop has to resume inside the second after the short write.
await write(0, 0, [Buffer.alloc(3000, 1), Buffer.alloc(5192, 2)]);
await write(1, 8192, Buffer.alloc(1, 3));
engine.destroy();
process.stdout.write(JSON.stringify(received));
